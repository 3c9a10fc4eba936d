"""`acgs-serve`: parse the config, build the app, serve until SIGTERM/SIGINT.

Exit codes:
  0  stopped by SIGTERM/SIGINT after draining in-flight requests and flushing the interaction log
  1  unexpected error
  2  invalid configuration (message names the flag and the environment variable)
  3  cannot listen on host:port or host:metrics-port (address in use, permission)

An artifact that fails verification does NOT exit: the server stays up, never ready, and /ready
returns 503 with the reason, so the operator (and `kubectl describe`) can show why.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING, Sequence

from aiohttp import web
from pydantic import ValidationError

from acgs_server.config import ServerConfig, describe_validation_error, load_config

if TYPE_CHECKING:
    from acgs_server.backend import ModelBackend

logger = logging.getLogger("acgs_server")

EXIT_OK, EXIT_UNEXPECTED, EXIT_CONFIG, EXIT_LISTEN = 0, 1, 2, 3


def build_backend(cfg: ServerConfig) -> ModelBackend:
    from acgs_server.backend import ArtifactBackend
    from acgs_server.worker import ProcessBackend

    kwargs = dict(
        artifact_dir=cfg.artifact,
        expected_digest=cfg.expected_digest,
        constitutional_hash=cfg.constitutional_hash,
        constitution_digest=cfg.constitution_digest,
        constitution_path=cfg.constitution_path,
        max_new_tokens=cfg.max_new_tokens,
        min_new_tokens=cfg.min_new_tokens,
        device=cfg.device,
        torch_threads=cfg.torch_threads,
        model_name=cfg.model_name,
        model_version=cfg.model_version,
        warmup_batch_size=min(cfg.max_batch_size, 8),
    )
    if cfg.model_process:
        return ProcessBackend(log_level=cfg.log_level, **kwargs)
    return ArtifactBackend(**kwargs)  # type: ignore[arg-type]


async def _listen(app: web.Application, host: str, port: int, **runner_args: object) -> web.AppRunner | None:
    runner = web.AppRunner(app, access_log=None, **runner_args)  # type: ignore[arg-type]
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
    except OSError as error:
        logger.error("cannot listen on %s:%d: %s", host, port, error)
        await runner.cleanup()
        return None
    return runner


async def serve(cfg: ServerConfig) -> int:
    from acgs_server.app import STATE_KEY, create_app, create_metrics_app

    app = create_app(cfg, build_backend(cfg))
    metrics_runner = None
    if cfg.metrics_port:
        metrics_runner = await _listen(create_metrics_app(app[STATE_KEY].metrics), cfg.host, cfg.metrics_port,
                                       shutdown_timeout=1.0)
        if metrics_runner is None:
            return EXIT_LISTEN
        logger.info("metrics on http://%s:%d/metrics", cfg.host, cfg.metrics_port)
    # shutdown_timeout bounds how long in-flight requests may take to finish after SIGTERM.
    runner = await _listen(app, cfg.host, cfg.port, shutdown_timeout=30.0)
    if runner is None:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        return EXIT_LISTEN
    logger.info("listening on http://%s:%d (artifact %s)", cfg.host, cfg.port, cfg.artifact)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logger.info("signal received: stop accepting, drain, flush")
    # cleanup(): stop listening → on_shutdown → wait for in-flight handlers → on_cleanup
    # (batcher drained, interaction log flushed).
    await runner.cleanup()
    if metrics_runner is not None:  # last, so the final counts can still be scraped while draining
        await metrics_runner.cleanup()
    logger.info("stopped")
    return EXIT_OK


def main(cfg: ServerConfig | None = None, argv: Sequence[str] | None = None) -> int:
    if cfg is None:
        try:
            cfg = load_config(argv)
        except ValidationError as error:
            sys.stderr.write(f"acgs-serve: invalid configuration: {describe_validation_error(error)}\n")
            return EXIT_CONFIG
    logging.basicConfig(
        level=cfg.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(serve(cfg))
    except Exception:  # noqa: BLE001 - last resort: log and exit with the documented code
        logger.exception("acgs-serve failed")
        return EXIT_UNEXPECTED
