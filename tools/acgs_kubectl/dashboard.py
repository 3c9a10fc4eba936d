"""`kubectl acgs dashboard`: a live page of one namespace, served on localhost with the caller's own
kubeconfig credentials (so it shows exactly what their RBAC lets them read).

Changes are pushed, not polled by the page: watches on the four acgs.io kinds and the operator's
pods wake every open Server-Sent Events stream, which sends the new state when it differs from the
last one sent. Serving latency comes from the model servers' /metrics through the apiserver's pod
proxy (again under the caller's RBAC), at most every SCRAPE_SECONDS."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from aiohttp import web
from kubernetes import client, watch

from acgs_operator.constants import GROUP, VERSION

from . import dashboard_state
from .client import PLURALS, Kube
from .dashboard_page import PAGE
from .tree import Snapshot

SCRAPE_SECONDS = 5.0
RESYNC_SECONDS = 5.0  # pods' readiness and the servers' latency also change without an acgs.io event


class Live:
    """The namespace's state, and a wake-up for every open stream when something changed."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self._serving: dict[str, dashboard_state.Serving] = {}
        self._scraped_at = 0.0
        self._stop = threading.Event()

    def start(self) -> None:
        ns = self.kube.namespace
        for plural in PLURALS.values():
            self._thread(self.kube.custom.list_namespaced_custom_object, GROUP, VERSION, ns, plural)
        self._thread(client.CoreV1Api(self.kube.api).list_namespaced_pod, ns,
                     label_selector="app.kubernetes.io/managed-by=acgs-operator")

    def stop(self) -> None:
        self._stop.set()

    def _thread(self, func: Any, *args: Any, **kwargs: Any) -> None:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    stream = watch.Watch().stream(func, *args, timeout_seconds=60, **kwargs)  # type: ignore[no-untyped-call]
                    for _ in stream:
                        self.notify()
                        if self._stop.is_set():
                            return
                except Exception:  # noqa: BLE001 - a dropped watch is restarted; the page resyncs anyway
                    time.sleep(1)
        threading.Thread(target=run, daemon=True).start()

    def notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def changed(self, timeout: float) -> None:
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def _scrape(self, snap: Snapshot) -> dict[str, dashboard_state.Serving]:
        if time.monotonic() - self._scraped_at < SCRAPE_SECONDS:
            return self._serving
        core, texts = client.CoreV1Api(self.kube.api), dict[str, list[str]]()
        for pod in snap.pods:
            labels = pod["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/component") != "model-server" or \
                    (pod.get("status") or {}).get("phase") != "Running":
                continue
            port = next((p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []
                         if p.get("name") == "http"), None)
            try:
                text = core.connect_get_namespaced_pod_proxy_with_path(
                    f"{pod['metadata']['name']}:{port}", self.kube.namespace, "metrics", _request_timeout=2)
            except Exception:  # noqa: BLE001 - an unreachable server shows as no latency, not an error page
                continue
            texts.setdefault(labels.get("acgs.io/owner-name", ""), []).append(text)
        self._serving = {name: dashboard_state.latency_from_metrics(t) for name, t in texts.items()}
        self._scraped_at = time.monotonic()
        return self._serving

    def state(self) -> dict[str, Any]:
        snap = self.kube.snapshot()
        return dashboard_state.state(snap, self._scrape(snap))


def app(live: Live) -> web.Application:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def current(_: web.Request) -> web.Response:
        return web.json_response(await asyncio.get_running_loop().run_in_executor(None, live.state))

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        last = None
        loop = asyncio.get_running_loop()
        while True:
            text = json.dumps(await loop.run_in_executor(None, live.state), sort_keys=True)
            if text != last:
                await response.write(f"data: {text}\n\n".encode())
                last = text
            await live.changed(RESYNC_SECONDS)

    application = web.Application()
    application.router.add_get("/", page)
    application.router.add_get("/api/state", current)
    application.router.add_get("/events", events)
    return application


def serve(kube: Kube, address: str, port: int) -> None:
    live = Live(kube)
    live.start()
    print(f"Serving the ACGS dashboard of namespace {kube.namespace} on http://{address}:{port}/ "
          f"(Ctrl-C to stop)", flush=True)
    try:
        # An open event stream must not hold the exit: SIGTERM/Ctrl-C stop within a second.
        web.run_app(app(live), host=address, port=port, print=None, handle_signals=True,
                    shutdown_timeout=1.0)
    finally:
        live.stop()
