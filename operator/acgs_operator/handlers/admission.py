"""The validating webhook: every acgs.io create/update passes through `admission.validate`."""

from __future__ import annotations

import time
from typing import Any

import kopf

from .. import admission
from ..api import KINDS, KindInfo
from ..config import Settings
from ..constants import GROUP, VERSION
from ..metrics import ADMISSION_LATENCY, ADMISSION_REQUESTS


def webhook_path(info: KindInfo) -> str:
    """The URL path the apiserver calls for this kind (kopf routes by handler id)."""
    return f"validate-{info.plural}"


def register(registry: kopf.OperatorRegistry) -> None:
    for info in KINDS:
        _register(registry, info)
        for operation in ("CREATE", "UPDATE"):  # at 0 from the start, so increase() sees the first error
            ADMISSION_REQUESTS.labels(info.kind, operation, "error")


def _register(registry: kopf.OperatorRegistry, info: KindInfo) -> None:
    @kopf.on.validate(GROUP, VERSION, info.plural, id=webhook_path(info), registry=registry)
    async def validate(spec: kopf.Spec, memo: kopf.Memo, **kwargs: Any) -> None:
        old: Any = kwargs.get("old")
        operation: str | None = kwargs.get("operation")
        # async on purpose: the check is ~0.1 ms of pure CPU, so a hop to kopf's thread pool would
        # cost more than the work and add tail latency under load.
        settings: Settings = memo.settings
        started = time.perf_counter()
        result = "allowed"
        try:
            old_spec = dict(old.get("spec") or {}) if old else None
            admission.validate(info.kind, dict(spec), old_spec, settings.constitutional_hash,
                               settings.image_allowlist)
        except admission.Rejected as e:
            result = "rejected"
            raise kopf.AdmissionError(f"{info.kind} rejected: {e}", code=422) from None
        except Exception:
            result = "error"  # a bug, not a verdict: AcgsWebhookErrors pages on these
            raise
        finally:
            ADMISSION_LATENCY.labels(info.kind).observe(time.perf_counter() - started)
            ADMISSION_REQUESTS.labels(info.kind, operation or "UNKNOWN", result).inc()
