"""The aiohttp application: state machine, endpoints, metrics and interaction logging.

KServe's shape: the HTTP server answers at once; `load()` runs in the background and only then
`ready` flips. A server whose artifact fails verification stays up, never ready, and says why on
/ready, so the operator can copy the reason into the Deployment's status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import itertools
import os
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel

from acgs_server import schemas
from acgs_server.backend import MODEL_LOAD_FAILED, LoadFailure, ModelBackend, ModelCard
from acgs_server.batcher import BatcherStopped, DynamicBatcher
from acgs_server.config import ServerConfig
from acgs_server.interactions import RECORD_SCHEMA_VERSION, InteractionLogger
from acgs_server.metrics import CONTENT_TYPE, ServerMetrics
from acgs_server.worker import WORKER_EXITED, WorkerDied

logger = logging.getLogger(__name__)

# Phases of one server's life, reported on /health and /ready.
STARTING, LOADING, READY, FAILED, STOPPING = "Starting", "Loading", "Ready", "Failed", "Stopping"


class ServerState:
    def __init__(self, cfg: ServerConfig, backend: ModelBackend) -> None:
        self.cfg = cfg
        self.backend = backend
        self.phase = STARTING
        self.failure: LoadFailure | None = None
        self.card: ModelCard | None = None
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.metrics = ServerMetrics()
        self.batcher: DynamicBatcher | None = None
        self.interactions: InteractionLogger | None = None
        self.load_task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.phase == READY

    def labels(self) -> tuple[str, str]:
        card = self.card
        return (card.name, card.version) if card else ("", "")


STATE_KEY = web.AppKey("acgs_state", ServerState)
# Request ids: unique per process start and cheap (uuid4 reads the OS RNG on every request, which
# showed up in the profile under load).
_ID_PREFIX = f"{os.getpid():x}{int(time.time() * 1000):x}"
_ID_COUNTER = itertools.count(1)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body, default=str)
    return web.Response(text=text, status=status, content_type="application/json", headers=headers)


def _error(status: int, kind: str, message: str, **extra: Any) -> web.Response:
    return _json({"error": {"type": kind, "message": message, **extra}}, status=status)


# --- lifecycle ---------------------------------------------------------------------------------


async def _load_in_background(state: ServerState) -> None:
    state.phase = LOADING
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        # The default executor: verification hashes files and loading imports torch; neither may
        # block the loop that is answering /health.
        card = await loop.run_in_executor(None, state.backend.load)
    except LoadFailure as failure:
        state.failure, state.phase = failure, FAILED
        logger.error("artifact %s will not be served: %s: %s %s", state.cfg.artifact, failure.reason,
                     failure.message, json.dumps(failure.details, default=str))
        return
    except Exception as error:  # noqa: BLE001 - anything unexpected still means "never ready"
        logger.exception("loading the artifact failed")
        state.failure, state.phase = LoadFailure(MODEL_LOAD_FAILED, repr(error)), FAILED
        return
    state.card = card
    metrics = state.metrics
    metrics.model_info.info({
        "model_name": card.name,
        "model_version": card.version,
        "digest": card.digest,
        "constitutional_hash": card.constitutional_hash,
        "base_model": card.base_model,
    })
    metrics.load_seconds.set(time.perf_counter() - started)
    labels = state.labels()
    batch_size, batch_latency = metrics.batch_size.labels(*labels), metrics.batch_latency.labels(*labels)

    def on_batch(size: int, seconds: float) -> None:
        batch_size.observe(size)
        batch_latency.observe(seconds)

    state.batcher = DynamicBatcher(
        state.backend.generate,
        max_batch_size=state.cfg.max_batch_size,
        max_wait_s=state.cfg.max_batch_wait_ms / 1000.0,
        on_batch=on_batch,
        on_queue_depth=metrics.queue_depth.set,
        # The model-process backend takes a second batch while one generates (pipelining).
        max_in_flight=getattr(state.backend, "pipeline_depth", 1),
    )
    state.batcher.start()
    if state.phase == STOPPING:  # SIGTERM arrived while loading
        return
    state.phase, state.ready_at = READY, time.time()
    metrics.ready.set(1)
    logger.info("ready: serving %s %s (%s) after %.2fs", card.name, card.version, card.digest,
                time.perf_counter() - started)


async def _on_startup(app: web.Application) -> None:
    state = app[STATE_KEY]
    if state.interactions is not None:
        state.interactions.start()
    state.load_task = asyncio.get_running_loop().create_task(_load_in_background(state), name="model-load")


async def _on_shutdown(app: web.Application) -> None:
    # aiohttp has stopped accepting connections; in-flight handlers still run to completion.
    state = app[STATE_KEY]
    state.phase = STOPPING
    state.metrics.ready.set(0)
    logger.info("shutting down: draining in-flight requests")


async def _on_cleanup(app: web.Application) -> None:
    state = app[STATE_KEY]
    if state.batcher is not None:
        await state.batcher.stop()
    if state.load_task is not None and not state.load_task.done():
        state.load_task.cancel()
    close = getattr(state.backend, "close", None)
    if close is not None:
        await asyncio.get_running_loop().run_in_executor(None, close)
    if state.interactions is not None:
        await asyncio.get_running_loop().run_in_executor(None, state.interactions.close)
        logger.info("interaction log flushed: %s", json.dumps(
            {k: v for k, v in state.interactions.stats().items() if k != "files"}))


# --- probes and info ---------------------------------------------------------------------------


def _status_body(state: ServerState) -> dict[str, Any]:
    body: dict[str, Any] = {"ready": state.ready, "phase": state.phase, "artifact": str(state.cfg.artifact)}
    if state.failure is not None:
        body["reason"] = state.failure.to_json()
    if state.card is not None:
        body["model"] = {"name": state.card.name, "version": state.card.version, "digest": state.card.digest}
    return body


async def health(request: web.Request) -> web.Response:
    """Liveness: 200 while this process can still become or stay useful. A failed artifact is
    not a liveness failure (restarting cannot fix it; /ready says why); a dead model process is."""
    state = request.app[STATE_KEY]
    dead = state.failure is not None and state.failure.reason == WORKER_EXITED
    body = {"status": "dead" if dead else "alive", "phase": state.phase,
            "uptime_seconds": round(time.time() - state.started_at, 3)}
    if dead and state.failure is not None:
        body["reason"] = state.failure.to_json()
    return _json(body, status=503 if dead else 200)


async def ready(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json(_status_body(state), status=200 if state.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[STATE_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if state.card is None:
        return _json({**_status_body(state), "models": []}, status=503)
    card = asdict(state.card)
    card.update(ready=state.ready, artifact=str(state.cfg.artifact), max_batch_size=state.cfg.max_batch_size,
                max_new_tokens=state.cfg.max_new_tokens)
    return _json({"models": [card]})


async def interaction_stats(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if state.interactions is None:
        return _json({"enabled": False, "total": 0, "dropped": 0, "by_endpoint": {}, "by_decision": {}, "files": []})
    return _json({"enabled": True, **state.interactions.stats()})


# --- predict -----------------------------------------------------------------------------------


def _make_predict(path: str, request_model: type[schemas.PredictRequest]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def predict(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        started = time.perf_counter()
        response = await _predict(state, request, path, request_model, started)
        elapsed = time.perf_counter() - started
        name, version = state.labels()
        state.metrics.requests.labels(path, str(response.status), name, version).inc()
        state.metrics.request_latency.labels(path, name, version).observe(elapsed)
        return response

    predict.__name__ = "predict_" + path.strip("/").replace("/", "_").replace("-", "_")
    return predict


async def _predict(
    state: ServerState,
    request: web.Request,
    path: str,
    request_model: type[schemas.PredictRequest],
    started: float,
) -> web.Response:
    request_id = request.headers.get("X-Request-ID") or f"{_ID_PREFIX}-{next(_ID_COUNTER)}"
    headers = {"X-Request-ID": request_id}
    if not state.ready:
        body = _status_body(state)
        return _json({"error": {"type": "NotReady", "message": f"model not ready (phase {state.phase})", **body}},
                     status=503, headers=headers)
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return _json(schemas.InvalidInput("body", f"request body is not valid JSON: {error}").body(),
                     status=400, headers=headers)
    try:
        parsed = schemas.parse_request(request_model, payload, state.cfg.constitutional_hash)
    except schemas.InvalidInput as error:
        return _json(error.body(), status=400, headers=headers)
    record = parsed.to_record()
    assert state.batcher is not None and state.card is not None
    try:
        prompt = state.backend.format_prompt(record)
        text = await state.batcher.submit(prompt)
    except BatcherStopped:
        return _error(503, "ShuttingDown", "server is shutting down")
    except WorkerDied as error:
        # Without its model process this server can never answer again: stop being ready and fail
        # /health so the kubelet restarts the container.
        logger.error("model process died: %s", error)
        state.failure, state.phase = LoadFailure(WORKER_EXITED, str(error)), FAILED
        state.metrics.ready.set(0)
        return _error(503, "ModelUnavailable", str(error))
    except Exception as error:  # noqa: BLE001 - a model failure is a 500 with a reason, never a hang
        logger.exception("request %s failed", request_id)
        return _error(500, "GenerationFailed", str(error))
    decision = state.backend.parse_decision(text)
    card = state.card
    latency_ms = (time.perf_counter() - started) * 1000.0
    result = schemas.PredictResponse(
        request_id=request_id,
        type=parsed.task_name(),
        decision=decision,
        generated_text=text,
        model_name=card.name,
        model_version=card.version,
        digest=card.digest,
        constitutional_hash=card.constitutional_hash,
        latency_ms=round(latency_ms, 3),
    )
    if state.interactions is not None:
        state.interactions.log({
            "schema_version": RECORD_SCHEMA_VERSION,
            "request_id": request_id,
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "endpoint": path,
            "type": result.type,
            "constitutional_hash": card.constitutional_hash,
            "model_name": card.name,
            "model_version": card.version,
            "digest": card.digest,
            # The trainer's dataset-record "input" shape, so a flywheel can replay or relabel it as is.
            "input": record["input"],
            "generated_text": text,
            "decision": decision,
            "latency_ms": result.latency_ms,
        })
    return _json(result, headers=headers)


# --- assembly ----------------------------------------------------------------------------------


def create_app(cfg: ServerConfig, backend: ModelBackend) -> web.Application:
    # 1 MiB is ample for a structured scenario and bounds what a client can make us parse.
    app = web.Application(client_max_size=1024 * 1024)
    state = ServerState(cfg, backend)
    if cfg.interaction_log_dir is not None:
        state.interactions = InteractionLogger(
            cfg.interaction_log_dir,
            max_bytes=cfg.interaction_log_max_bytes,
            max_files=cfg.interaction_log_max_files,
            queue_size=cfg.interaction_log_queue_size,
            on_drop=state.metrics.interactions_dropped.inc,
            on_write=state.metrics.interactions_logged.inc,
        )
    app[STATE_KEY] = state
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/models", models)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/interactions/stats", interaction_stats)
    for path, request_model in schemas.ENDPOINTS.items():
        app.router.add_post(path, _make_predict(path, request_model))
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app
