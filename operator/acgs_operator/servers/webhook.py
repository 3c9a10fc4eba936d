"""The admission webhook server: a process of its own, started and supervised by the operator.

Why a process: in kopf's webhook the AdmissionReviews shared the operator's event loop (and GIL)
with reconciliation, and a burst of reconciles pushed a review's p50 to ~0.5 s and its p99 to ~4 s
against the webhook's 5 s timeout with failurePolicy Fail (bench/RESULTS.md). Here a bare aiohttp
route per kind answers with handlers/admission.review_response: the same checks, TLS certificate,
port and paths (`validate-<plural>`) as the ValidatingWebhookConfiguration names.

Lifecycle: every replica (leader or standby) runs one; it dies with the operator: the kernel sends
it SIGKILL when the operator goes (PR_SET_PDEATHSIG), and it also exits when its pipe to the
operator reaches EOF. The operator restarts it if it exits on its own; readiness (tcpSocket on the
webhook port) is this process listening. Its admission metrics reach the operator's /metrics through
the same pipe (WebhookMetrics collects them from the child at scrape time).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import multiprocessing
import os
import signal
import ssl
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ..api import KINDS
from ..config import Settings
from ..handlers.admission import init_metrics, review_response, webhook_path
from ..metrics import ADMISSION_REGISTRY

logger = logging.getLogger("acgs_operator.webhook")
PR_SET_PDEATHSIG = 1
SCRAPE = "metrics"
RESTART_DELAY_SECONDS = 1.0


def application(settings: Settings) -> web.Application:
    async def validate(request: web.Request) -> web.Response:
        try:
            review = json.loads(await request.read())
        except ValueError:
            review = None
        if not isinstance(review, dict):
            return web.Response(status=400, text="body: expected an AdmissionReview JSON object")
        return web.Response(body=json.dumps(review_response(review, settings)).encode(),
                            content_type="application/json")

    app = web.Application()
    app.add_routes([web.post(f"/{webhook_path(info)}", validate) for info in KINDS])
    return app


def tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.webhook_cert), str(settings.webhook_key))
    return context


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pipe's EOF below still ends this process
        pass
    if os.getppid() != parent_pid:  # the operator died before prctl took effect
        os._exit(1)


def _answer_scrapes(conn: Connection) -> None:
    """Until the operator's end closes (it exited): send the admission metrics on request."""
    try:
        while True:
            if conn.recv() == SCRAPE:
                conn.send_bytes(generate_latest(ADMISSION_REGISTRY))
    except (EOFError, OSError):
        os._exit(0)


def serve(settings: Settings, conn: Connection, parent_pid: int) -> None:
    """The child process's entry point (multiprocessing, spawn)."""
    _die_with_parent(parent_pid)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    init_metrics()
    threading.Thread(target=_answer_scrapes, args=(conn,), name="scrapes", daemon=True).start()
    logger.info("admission webhook serving on %s:%d (pid %d)", settings.webhook_host, settings.webhook_port,
                os.getpid())
    web.run_app(application(settings), host=settings.webhook_host, port=settings.webhook_port,
                ssl_context=tls_context(settings), access_log=None, print=None)


class WebhookProcess:
    """The operator's side: start, restart when it exits, stop (with the operator)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Connection | None = None
        self.lock = threading.Lock()  # the pipe, shared with the metrics thread
        self.stopping = False
        self.restarts = 0

    def start(self) -> None:
        # spawn, not fork: the operator has threads and an event loop a forked child must not inherit.
        # Called on the event loop's thread: PR_SET_PDEATHSIG fires when the *thread* that started
        # the child ends, and this one lives as long as the operator.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=serve, args=(self.settings, theirs, os.getpid()),
                                  name="acgs-webhook", daemon=True)
        process.start()
        theirs.close()  # only the child holds its end: our exit is its EOF
        with self.lock:
            self.process, self.conn = process, ours

    async def supervise(self) -> None:
        """Restart the server whenever it exits, until stop()."""
        while not self.stopping:
            process = self.process
            if process is not None and process.is_alive():
                await asyncio.sleep(0.5)
                continue
            if process is not None:
                logger.error("admission webhook process exited with %s; restarting it", process.exitcode)
                self.restarts += 1
                await asyncio.sleep(RESTART_DELAY_SECONDS)
                if self.stopping:
                    break
            self.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        with self.lock:
            process, conn, self.process, self.conn = self.process, self.conn, None, None
        if process is None:
            return
        if process.is_alive():
            process.terminate()
            process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(timeout)
        if conn is not None:
            conn.close()

    def scrape(self, timeout: float = 2.0) -> str:
        """The child's admission metrics (Prometheus text); empty when it cannot answer now."""
        with self.lock:
            if self.conn is None:
                return ""
            try:
                while self.conn.poll():  # a late answer to an earlier scrape that timed out
                    self.conn.recv_bytes()
                self.conn.send(SCRAPE)
                if self.conn.poll(timeout):
                    return self.conn.recv_bytes().decode()
            except (EOFError, OSError):
                pass
        return ""


class WebhookMetrics:
    """A prometheus collector in the operator that yields the webhook process's metrics."""

    def __init__(self, webhook: WebhookProcess) -> None:
        self.webhook = webhook

    def collect(self) -> Iterator[Metric]:
        yield from text_string_to_metric_families(self.webhook.scrape())

    def describe(self) -> list[Any]:
        return []  # unknown until scraped; an empty describe() keeps registration from calling collect()


def start(settings: Settings) -> WebhookProcess:
    webhook = WebhookProcess(settings)
    webhook.start()
    REGISTRY.register(WebhookMetrics(webhook))
    return webhook
