"""The progress endpoint: trainers POST their progress here, the operator writes status.progress.

    POST /v1/progress/<namespace>/<name>/<uid>
    Authorization: Bearer <HMAC-SHA256(progress key, "<namespace>/<name>/<uid>")>
    body: acgs_contract.progress.ProgressReport (stream, sequence, phase, step, totalSteps, percent,
          loss, epsilon, message)

The token reaches the pod through a per-job Secret (env ACGS_PROGRESS_TOKEN via secretKeyRef), so it
never appears in the Job spec. Writes are throttled per job (Settings.progress_min_interval; the
newest report wins) and skipped when nothing changed. See docs/training.md.

Refused: a token that is not the job's (401, also when it is not ASCII), a body that is not a valid
report (400, NaN and Infinity included), and a replay (409): a report whose sequence is not above the
last one accepted from its stream, or from a stream a newer one (a retried pod) replaced. The
replay record lives in this process: an operator restart forgets it (documented in docs/training.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import kopf
from acgs_contract.progress import TERMINAL_PHASES, ProgressReport
from aiohttp import web
from pydantic import ValidationError

from .. import kube
from ..api.trainingjob import TrainingProgress
from ..config import Settings
from ..constants import API_VERSION

logger = logging.getLogger("acgs_operator.progress")
RETIRED_STREAMS_PER_JOB = 32
REPLAY_RECORDS = 10_000  # jobs whose last accepted report is remembered (oldest forgotten first)


def progress_token(key: bytes, namespace: str, name: str, uid: str) -> str:
    return hmac.new(key, f"{namespace}/{name}/{uid}".encode(), hashlib.sha256).hexdigest()


def progress_key(settings: Settings) -> bytes:
    if settings.progress_key:
        return settings.progress_key.encode()
    logger.warning("ACGS_PROGRESS_KEY is unset: using a random key; running trainers' tokens stop "
                   "working when this operator restarts")
    return secrets.token_bytes(32)


def status_progress(report: ProgressReport) -> dict[str, Any]:
    """A trainer's report as TrainingJob status.progress (rounded for people, ε rounded up)."""
    return TrainingProgress(percent=report.percent, step=report.step, total_steps=report.total_steps,
                            loss=report.loss, epsilon=report.epsilon).to_api()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_report(raw: bytes) -> ProgressReport:
    """Strict JSON (no NaN/Infinity) into a ProgressReport; ValueError/ValidationError otherwise."""
    return ProgressReport.model_validate(json.loads(raw, parse_constant=_reject_constant))


def token_matches(given: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str (TypeError, a 500); bytes compare in constant time.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


@dataclass
class _Stream:
    current: str
    sequence: int
    retired: deque[str] = field(default_factory=lambda: deque(maxlen=RETIRED_STREAMS_PER_JOB))


class ReplayGuard:
    """Per job: the newest stream and its last accepted sequence; streams it replaced are refused."""

    def __init__(self, capacity: int = REPLAY_RECORDS) -> None:
        self.capacity = capacity
        self.jobs: OrderedDict[tuple[str, str, str], _Stream] = OrderedDict()

    def refusal(self, job: tuple[str, str, str], report: ProgressReport) -> str | None:
        """Why `report` must be refused (None: accepted, and recorded)."""
        seen = self.jobs.get(job)
        if seen is None:
            self.jobs[job] = _Stream(report.stream, report.sequence)
            while len(self.jobs) > self.capacity:
                self.jobs.popitem(last=False)
            return None
        self.jobs.move_to_end(job)
        if report.stream == seen.current:
            if report.sequence <= seen.sequence:
                return (f"replayed or out-of-order report: sequence {report.sequence} of stream "
                        f"{report.stream} is not above {seen.sequence}, the last one accepted")
            seen.sequence = report.sequence
            return None
        if report.stream in seen.retired:
            return f"report from stream {report.stream}, which a newer stream of this job replaced"
        seen.retired.append(seen.current)
        seen.current, seen.sequence = report.stream, report.sequence
        return None


@dataclass
class _JobState:
    written: dict[str, Any] | None = None
    written_at: float = 0.0
    pending: dict[str, Any] | None = None
    flush: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ProgressServer:
    def __init__(self, settings: Settings, key: bytes) -> None:
        self.settings = settings
        self.key = key
        self.jobs: dict[tuple[str, str, str], _JobState] = {}
        self.replays = ReplayGuard()
        self.runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/v1/progress/{namespace}/{name}/{uid}", self.post)
        return app

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.settings.progress_host, self.settings.progress_port).start()
        logger.info("progress endpoint on %s:%d (pods use %s)", self.settings.progress_host,
                    self.settings.progress_port, self.settings.progress_base_url)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def post(self, request: web.Request) -> web.Response:
        ns, name, uid = (request.match_info[k] for k in ("namespace", "name", "uid"))
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token_matches(given, progress_token(self.key, ns, name, uid)):
            return web.json_response({"error": "invalid or missing bearer token"}, status=401)
        try:
            report = parse_report(await request.read())
        except (ValueError, ValidationError, RecursionError) as exc:  # RecursionError: deep nesting
            return web.json_response({"error": f"invalid progress report: {exc}"}, status=400)
        refusal = self.replays.refusal((ns, name, uid), report)
        if refusal:
            return web.json_response({"error": refusal}, status=409)
        state = self.jobs.setdefault((ns, name, uid), _JobState())
        state.pending = status_progress(report)
        final = report.final
        wait = self.settings.progress_min_interval - (time.monotonic() - state.written_at)
        if final or wait <= 0:
            status = await self._flush(ns, name, uid, state)
            if final:
                self.jobs.pop((ns, name, uid), None)
            return web.json_response({"written": status}, status=202 if status != "gone" else 410)
        if state.flush is None or state.flush.done():
            state.flush = asyncio.create_task(self._flush_later(ns, name, uid, state, wait))
        return web.json_response({"written": "deferred"}, status=202)

    async def _flush_later(self, ns: str, name: str, uid: str, state: _JobState, wait: float) -> None:
        await asyncio.sleep(wait)
        await self._flush(ns, name, uid, state)

    async def _flush(self, ns: str, name: str, uid: str, state: _JobState) -> str:
        async with state.lock:
            progress, state.pending = state.pending, None
            if progress is None or progress == state.written:
                return "unchanged"
            loop = asyncio.get_running_loop()
            try:
                # The blocking client runs in a thread, never on the event loop.
                await loop.run_in_executor(None, _patch_progress, ns, name, uid, progress)
            except kube.ApiException as exc:
                if exc.status in (404, 409, 422):  # deleted, or re-created under a new uid
                    self.jobs.pop((ns, name, uid), None)
                    return "gone"
                logger.warning("progress of %s/%s not written: %s", ns, name, kube.error_message(exc))
                return "error"
            state.written, state.written_at = progress, time.monotonic()
            return "written"


def _patch_progress(namespace: str, name: str, uid: str, progress: dict[str, Any]) -> None:
    current = kube.get(API_VERSION, "TrainingJob", namespace, name)
    if current is None or current["metadata"]["uid"] != uid:
        raise kube.ApiException(status=404, reason=f"TrainingJob {namespace}/{name} uid {uid} not found")
    if (current.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return  # the Job's outcome is final; a late report must not move progress backwards
    kube.patch_status(API_VERSION, "TrainingJob", namespace, name, {"progress": progress})


async def start_progress_server(memo: kopf.Memo, **_: Any) -> None:
    settings: Settings = memo.settings
    memo.progress_key = progress_key(settings)
    if settings.progress_port:
        memo.progress_server = ProgressServer(settings, memo.progress_key)
        await memo.progress_server.start()


async def stop_progress_server(memo: kopf.Memo, **_: Any) -> None:
    server = getattr(memo, "progress_server", None)
    if server is not None:
        await server.stop()


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(id="progress-endpoint", registry=registry)(start_progress_server)
    kopf.on.cleanup(id="progress-endpoint", registry=registry)(stop_progress_server)
