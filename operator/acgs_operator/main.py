"""Entry point: settings, handler registration and the kopf runtime. No business logic here."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from .config import Settings
from .handlers import admission, deployment, lifecycle, modelversion, trainingjob
from .servers import progress

logger = logging.getLogger("acgs_operator")


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
    if config.webhook_cert and config.webhook_key:
        settings.admission.server = kopf.WebhookServer(
            addr=config.webhook_host, port=config.webhook_port,
            certfile=str(config.webhook_cert), pkeyfile=str(config.webhook_key))
    else:
        logger.warning("no ACGS_WEBHOOK_CERT/ACGS_WEBHOOK_KEY: the admission webhook is not served, and "
                       "with failurePolicy Fail the apiserver refuses acgs.io writes")
    settings.admission.managed = None  # the ValidatingWebhookConfiguration is static (manifests/)


def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: Settings = memo.settings
    configure(settings, config)
    if config.metrics_port:
        start_http_server(config.metrics_port)
    logger.info("constitutional hash %s; namespaces %s", config.constitutional_hash,
                ",".join(config.namespaces) or "all")


def registry() -> kopf.OperatorRegistry:
    """Every handler of the operator, registered explicitly (importing a module registers nothing)."""
    reg = kopf.OperatorRegistry()
    # kopf's default registry adds this itself; an explicit registry must name it: credentials from
    # the kubernetes client's config (in-cluster service account, else the kubeconfig).
    kopf.on.login(registry=reg)(kopf.login_via_client)
    kopf.on.startup(registry=reg)(startup)
    admission.register(reg)
    trainingjob.register(reg)
    modelversion.register(reg)
    deployment.register(reg)
    progress.register(reg)
    lifecycle.register(reg, reconciled=frozenset({trainingjob.KIND, modelversion.KIND, deployment.KIND}))
    return reg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the ACGS operator (configuration from ACGS_* env).")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    config = Settings.from_env()
    # Shared by every object's handlers (kopf copies the memo shallowly per object).
    memo = kopf.Memo(settings=config, rollout_schedule=deployment.Schedule())
    asyncio.run(kopf.operator(
        registry=registry(), memo=memo, standalone=True,
        clusterwide=not config.namespaces, namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz",
    ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
