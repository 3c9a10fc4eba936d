"""The aiohttp application: state machine, endpoints, metrics and interaction logging.

KServe's shape: the HTTP server answers at once; `load()` runs in the background and only then
`ready` flips. A server whose artifact fails verification stays up, never ready, and says why on
/ready, so the operator can copy the reason into the Deployment's status. Handlers raise typed
errors (errors.py); one middleware turns them into status codes and counts predict requests.
/metrics is a separate application on its own port (`create_metrics_app`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from acgs_server import reasoning, schemas
from acgs_trainer.constitution import Constitution
from acgs_server.backend import MODEL_LOAD_FAILED, LoadFailure, ModelBackend, ModelCard
from acgs_server.batcher import BatcherStopped, DynamicBatcher
from acgs_server.config import ServerConfig
from acgs_server.errors import (GenerationFailed, ModelUnavailable, NotReady, ShuttingDown, error_middleware,
                                json_response, request_id)
from acgs_server.interactions import InteractionLogger, build_record
from acgs_server.jsonbody import parse_json_body
from acgs_server.metrics import CONTENT_TYPE, ServerMetrics
from acgs_server.worker import WORKER_EXITED, WorkerDied

logger = logging.getLogger(__name__)

# Phases of one server's life, reported on /health and /ready.
STARTING, LOADING, READY, FAILED, STOPPING = "Starting", "Loading", "Ready", "Failed", "Stopping"
# A predict body is a few hundred bytes; this bounds what a client can make the server read.
MAX_BODY_BYTES = 64 * 1024


class ServerState:
    def __init__(self, cfg: ServerConfig, backend: ModelBackend) -> None:
        self.cfg = cfg
        self.backend = backend
        self.phase = STARTING
        self.failure: LoadFailure | None = None
        self.card: ModelCard | None = None
        self.constitution: Constitution | None = None
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
METRICS_KEY = web.AppKey("acgs_metrics", ServerMetrics)


def _json(body: Any, status: int = 200) -> web.Response:
    return json_response(body.model_dump_json() if isinstance(body, BaseModel) else body, status=status)


# --- lifecycle ---------------------------------------------------------------------------------


def _constitution(cfg: ServerConfig) -> Constitution:
    try:
        return reasoning.load(cfg.constitutional_hash, cfg.constitution_path, cfg.constitution_digest)
    except reasoning.ConstitutionError as error:
        raise LoadFailure(reasoning.CONSTITUTION_INVALID, str(error)) from error


async def _load_in_background(state: ServerState) -> None:
    state.phase = LOADING
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        # The default executor: verification hashes files and loading imports torch; neither may
        # block the loop that is answering /health.
        card = await loop.run_in_executor(None, state.backend.load)
        # After the artifact: its verification reason (e.g. ConstitutionalHashMismatch) comes first.
        state.constitution = await loop.run_in_executor(None, _constitution, state.cfg)
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
    body: dict[str, Any] = {"status": "dead" if dead else "alive", "phase": state.phase,
            "uptime_seconds": round(time.time() - state.started_at, 3)}
    if dead and state.failure is not None:
        body["reason"] = state.failure.to_json()
    return _json(body, status=503 if dead else 200)


async def ready(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json(_status_body(state), status=200 if state.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].render()
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


async def predict(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    started = time.perf_counter()
    path = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
    if not state.ready:
        raise NotReady(f"model not ready (phase {state.phase})", **_status_body(state))
    parsed = schemas.parse_request(path, parse_json_body(await request.read()), state.cfg.constitutional_hash,
                                   state.cfg.require_request_hash)
    record = parsed.record()
    assert state.batcher is not None and state.card is not None and state.constitution is not None
    try:
        text = await state.batcher.submit(state.backend.format_prompt(record))
    except BatcherStopped as error:
        raise ShuttingDown("server is shutting down") from error
    except WorkerDied as error:
        # Without its model process this server can never answer again: stop being ready and fail
        # /health so the kubelet restarts the container.
        logger.error("model process died: %s", error)
        state.failure, state.phase = LoadFailure(WORKER_EXITED, str(error)), FAILED
        state.metrics.ready.set(0)
        raise ModelUnavailable(str(error)) from error
    except Exception as error:  # noqa: BLE001 - a model failure is a 500 with a reason, never a hang
        logger.exception("request %s failed", request_id(request))
        raise GenerationFailed(str(error)) from error
    judgement = reasoning.judge(state.constitution, parsed.scenario, text)
    card = state.card
    result = schemas.PredictResponse(
        request_id=request_id(request),
        type=parsed.dataset_type,
        **asdict(judgement),  # decision, reasoning, principles, rules, compliance_score, constitution_decision
        missing_fields=parsed.missing,
        generated_text=text,
        model_name=card.name,
        model_version=card.version,
        digest=card.digest,
        constitutional_hash=card.constitutional_hash,
        latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )
    if state.interactions is not None:
        state.interactions.log(build_record(
            request_id=result.request_id, endpoint=path, card=card, record=record, generated_text=text,
            decision=judgement.decision, latency_ms=result.latency_ms,
            free_text=state.cfg.interaction_log_free_text))
    return _json(result)


def _observer(state: ServerState) -> Any:
    """Counts every predict answer (200 or error) by endpoint, status and model."""
    def observe(request: web.Request, status: int, seconds: float) -> None:
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else ""
        if path not in schemas.ENDPOINTS:
            return
        name, version = state.labels()
        state.metrics.requests.labels(path, str(status), name, version).inc()
        state.metrics.request_latency.labels(path, name, version).observe(seconds)

    return observe


# --- assembly ----------------------------------------------------------------------------------


def create_app(cfg: ServerConfig, backend: ModelBackend) -> web.Application:
    state = ServerState(cfg, backend)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[error_middleware(_observer(state))])
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
    app.router.add_get("/models", models)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/interactions/stats", interaction_stats)
    for path in schemas.ENDPOINTS:
        app.router.add_post(path, predict)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app


def create_metrics_app(state_metrics: ServerMetrics) -> web.Application:
    """/metrics alone, for its own listener: whoever may scrape it reaches nothing else."""
    app = web.Application(client_max_size=1024)
    app[METRICS_KEY] = state_metrics
    app.router.add_get("/metrics", metrics)
    return app
