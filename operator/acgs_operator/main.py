"""Entry point: settings, handler registration and the kopf runtime. No business logic here."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import socket
from typing import Any

import kopf
from prometheus_client import start_http_server

from . import leader
from .config import Settings
from .handlers import admission, deployment, flywheel, lifecycle, modelversion, trainingjob
from .servers import progress, webhook

logger = logging.getLogger("acgs_operator")
LEADERSHIP_LOST_EXIT_CODE = 3
_metrics_served: list[int] = []


class _QuietAdmissions(logging.Filter):
    """Admission reviews arrive hundreds per second: log rejections, not every success."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (record.levelno <= logging.INFO and msg.startswith("Webhook '") and msg.endswith("succeeded."))


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(_QuietAdmissions())


def configure(settings: kopf.OperatorSettings, config: Settings) -> None:
    # kopf's own state lives in annotations only (never half in status), under our prefix.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="acgs.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="acgs.io", key="last-handled-configuration")
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 16  # sync handlers use the blocking kubernetes client
    settings.watching.server_timeout = 300
    # No CRD or namespace watches: our CRDs are installed before the operator starts, and the
    # namespaces are the configured list (or all). That keeps both out of the RBAC (rbac.py).
    settings.scanning.disabled = True
    if config.in_loop_webhook_port and config.webhook_cert and config.webhook_key:
        settings.admission.server = kopf.WebhookServer(
            addr=config.webhook_host, port=config.in_loop_webhook_port,
            certfile=str(config.webhook_cert), pkeyfile=str(config.webhook_key))
    settings.admission.managed = None  # the ValidatingWebhookConfiguration is static (manifests/)


def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: Settings = memo.settings
    configure(settings, config)
    if config.metrics_port and not _metrics_served:  # once per process: a standby that leads starts kopf again
        start_http_server(config.metrics_port)
        _metrics_served.append(config.metrics_port)
    logger.info("constitutional hash %s; namespaces %s", config.constitutional_hash,
                ",".join(config.namespaces) or "all")


def registry(admission_only: bool = False, in_loop_webhook: bool = False) -> kopf.OperatorRegistry:
    """Every handler of the operator, registered explicitly (importing a module registers nothing).
    admission_only: what a standby replica runs (progress endpoint, no reconciler; the admission
    webhook is a process of its own, servers/webhook.py). in_loop_webhook: bench/admission.py's baseline."""
    reg = kopf.OperatorRegistry()
    # kopf's default registry adds this itself; an explicit registry must name it: credentials from
    # the kubernetes client's config (in-cluster service account, else the kubeconfig).
    kopf.on.login(registry=reg)(kopf.login_via_client)
    kopf.on.startup(registry=reg)(startup)
    if in_loop_webhook:
        admission.register_in_loop(reg)
    # Trainers' progress reports reach either replica through the Service: both serve them (a
    # token-checked status merge-patch; both replicas need the same ACGS_PROGRESS_KEY).
    progress.register(reg)
    if admission_only:
        return reg
    trainingjob.register(reg)
    modelversion.register(reg)
    deployment.register(reg)
    flywheel.register(reg)
    lifecycle.register(reg, reconciled=frozenset({trainingjob.KIND, modelversion.KIND, deployment.KIND}))
    return reg


async def run(config: Settings, memo: kopf.Memo) -> None:
    """The admission webhook's process, and kopf (leading, or standing by) beside it."""
    if not (config.webhook_cert and config.webhook_key):
        logger.warning("no ACGS_WEBHOOK_CERT/ACGS_WEBHOOK_KEY: the admission webhook is not served, and "
                       "with failurePolicy Fail the apiserver refuses acgs.io writes")
        await run_kopf(config, memo)
        return
    server = webhook.start(config)
    supervising = asyncio.create_task(server.supervise())
    try:
        await run_kopf(config, memo)
    finally:
        supervising.cancel()
        server.stop()


async def run_kopf(config: Settings, memo: kopf.Memo) -> None:
    """Lead (or wait to), then run kopf until it stops or the Lease is lost.

    A standby serves the progress endpoint and /healthz and reconciles nothing; every replica serves
    the admission webhook (validation is stateless: all answer, so the webhook Service stays up
    while one restarts) from its own process, started by run()."""
    in_loop = bool(config.in_loop_webhook_port)
    operator = functools.partial(
        kopf.operator, memo=memo, standalone=True, clusterwide=not config.namespaces, namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz")
    if not config.leader_election:
        await operator(registry=registry(in_loop_webhook=in_loop))
        return
    identity = config.leader_identity or f"{socket.gethostname()}-{os.getpid()}"
    elector = leader.Elector(config.operator_namespace, identity, config.leader_timing)
    stop_standby = asyncio.Event()
    standby = asyncio.create_task(operator(registry=registry(admission_only=True), stop_flag=stop_standby))
    try:
        await elector.acquire()
    finally:
        stop_standby.set()
        await standby
    running = asyncio.create_task(operator(registry=registry(in_loop_webhook=in_loop)))
    keeping = asyncio.create_task(elector.keep())
    done, _ = await asyncio.wait({running, keeping}, return_when=asyncio.FIRST_COMPLETED)
    if keeping in done:
        # Stop now, handlers in flight included: the Lease may go to another replica once it
        # expires, and two replicas must never reconcile at once. The pod restarts as a candidate
        # (the webhook process dies with this one: PR_SET_PDEATHSIG).
        logger.error("leadership lost, exiting: %s", keeping.exception())
        logging.shutdown()
        os._exit(LEADERSHIP_LOST_EXIT_CODE)
    keeping.cancel()
    await asyncio.to_thread(elector.release)
    running.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the ACGS operator (configuration from ACGS_* env).")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    config = Settings.from_env()
    # Shared by every object's handlers (kopf copies the memo shallowly per object).
    memo = kopf.Memo(settings=config, rollout_schedule=deployment.Schedule())
    asyncio.run(run(config, memo))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
