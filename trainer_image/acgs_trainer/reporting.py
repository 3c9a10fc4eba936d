"""Progress and result reporting to the operator, and Prometheus metrics.

Progress: POST an ``acgs_contract.progress.ProgressReport`` to ``--progress-url`` (or
$ACGS_PROGRESS_URL) with ``Authorization: Bearer $ACGS_PROGRESS_TOKEN``, at every log interval and
at the end. Best effort: a background thread sends the newest report with a short timeout; failures
are logged, never raised, because the operator being unreachable must not cost a training run.

Result: an ``acgs_contract.result`` model as compact JSON (< 4 KiB) written to the pod's
termination-message path and to ``<output>/result.json``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
import urllib.request
from pathlib import Path
from typing import Any

from acgs_contract import env
from acgs_contract.progress import ProgressReport
from acgs_contract._model import WireModel
from acgs_contract.result import termination_message
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
POST_TIMEOUT_S = 2.0


class ProgressReporter:
    def __init__(self, url: str | None, total_steps: int = 0) -> None:
        self.url = url
        self.total_steps = total_steps
        self.sent = 0
        self.failed = 0
        # The operator refuses replays: each report carries this process's random stream id and a
        # sequence that only increases (a retried pod is a new stream that replaces the old one).
        self.stream = secrets.token_hex(16)
        self.sequence = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        if url:
            self._thread = threading.Thread(target=self._worker, name="progress", daemon=True)
            self._thread.start()

    def report(self, phase: str, step: int, loss: float | None = None,
               epsilon: float | None = None, message: str = "", final: bool = False) -> None:
        if not self.url:
            return
        self.sequence += 1
        body = ProgressReport.at(phase, step, self.total_steps, loss, epsilon, message,
                                 stream=self.stream, sequence=self.sequence).to_wire()
        if final:
            self.close()
            self._post(body)  # synchronous: the pod may exit right after
            return
        try:
            self._queue.get_nowait()  # drop a report not yet sent: only the newest matters
        except queue.Empty:
            pass
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            pass

    def _worker(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            self._post(body)

    def _post(self, body: dict[str, Any]) -> None:
        assert self.url
        headers = {"Content-Type": "application/json"}
        token = os.environ.get(env.PROGRESS_TOKEN)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=POST_TIMEOUT_S) as resp:
                resp.read()
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - progress is best effort by design
            self.failed += 1
            log.warning("progress POST to %s failed: %s", self.url, exc)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(None, timeout=POST_TIMEOUT_S)
            except queue.Full:
                pass
            self._thread.join(timeout=POST_TIMEOUT_S * 2)
        self._thread = None


def compact_result(result: WireModel | dict[str, Any]) -> str:
    """JSON of ``result`` that fits a termination message (the contract's rule)."""
    return termination_message(result)


def write_result(result: WireModel | dict[str, Any], output_dir: Path | None,
                 termination_log: str | None) -> None:
    text = compact_result(result)
    targets: list[Path] = []
    if output_dir is not None:
        targets.append(output_dir / "result.json")
    path = termination_log or DEFAULT_TERMINATION_LOG
    if termination_log or os.access(DEFAULT_TERMINATION_LOG, os.W_OK):
        targets.append(Path(path))
    for target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            log.error("cannot write result to %s: %s", target, exc)


class TrainerMetrics:
    """Prometheus metrics of one run (own registry: several runs in one test process are fine)."""

    def __init__(self, port: int | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.step = Gauge("acgs_trainer_step", "optimizer steps done", registry=r)
        self.total_steps = Gauge("acgs_trainer_total_steps", "planned optimizer steps", registry=r)
        self.loss = Gauge("acgs_trainer_loss", "training loss (mean over the log interval; "
                          "under DP the noised, accounted loss: docs/privacy.md)", registry=r)
        self.epsilon = Gauge("acgs_trainer_epsilon_spent", "privacy budget spent (ε)", registry=r)
        self.epsilon_target = Gauge("acgs_trainer_epsilon_target", "target ε", registry=r)
        self.examples = Counter("acgs_trainer_examples", "training examples processed (under DP "
                                "the expected batch size per step: sampled sizes are private)",
                                registry=r)
        self.step_seconds = Histogram("acgs_trainer_step_seconds", "wall time per optimizer step",
                                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                               5, 10), registry=r)
        self.eval_score = Gauge("acgs_trainer_eval", "evaluation metrics", ["metric"], registry=r)
        self.filter_records = Gauge("acgs_trainer_filter_records", "constitutional filter counts",
                                    ["outcome"], registry=r)
        if port is not None:
            # In a pod: the pod IP (ACGS_METRICS_HOST from the downward API), so pods sharing a
            # host's network (the local pod runner) do not collide on the port.
            host = os.environ.get(env.METRICS_HOST) or "0.0.0.0"
            start_http_server(port, addr=host, registry=r)
            log.info("metrics on %s:%d/metrics", host, port)
