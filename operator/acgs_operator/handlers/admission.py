"""The validating webhook: every acgs.io create/update passes through `admission.validate`.

`review_response` answers one AdmissionReview; the operator serves it from a process of its own
(servers/webhook.py), so admission latency does not depend on how busy reconciliation keeps kopf's
event loop. `register_in_loop` serves the same `check` through kopf's webhook inside the operator's
event loop: the pre-dedicated-process setup, kept only as bench/admission.py's baseline.
"""

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


def init_metrics() -> None:
    for info in KINDS:
        for operation in ("CREATE", "UPDATE"):  # at 0 from the start, so increase() sees the first error
            ADMISSION_REQUESTS.labels(info.kind, operation, "error")


def check(kind: str, operation: str, spec: dict[str, Any], old_spec: dict[str, Any] | None,
          settings: Settings) -> str | None:
    """None to admit, else the refusal the user sees; counted and timed. A bug raises (result "error")."""
    started, result = time.perf_counter(), "allowed"
    try:
        admission.validate(kind, spec, old_spec, settings.constitutional_hash, settings.image_allowlist)
        return None
    except admission.Rejected as e:
        result = "rejected"
        return f"{kind} rejected: {e}"
    except Exception:
        result = "error"  # a bug, not a verdict: AcgsWebhookErrors pages on these
        raise
    finally:
        ADMISSION_LATENCY.labels(kind).observe(time.perf_counter() - started)
        ADMISSION_REQUESTS.labels(kind, operation, result).inc()


def review_response(review: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The AdmissionReview answer to one AdmissionReview request (no I/O)."""
    request = review.get("request") or {}
    kind = (request.get("kind") or {}).get("kind", "")
    obj, old = request.get("object") or {}, request.get("oldObject")
    answer: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    try:
        refusal = check(kind, request.get("operation") or "UNKNOWN", dict(obj.get("spec") or {}),
                        dict(old.get("spec") or {}) if old else None, settings)
    except Exception:
        # Never admit unchecked (as failurePolicy Fail would not); the error is counted in check().
        refusal, code = f"{kind}: internal error in the admission webhook", 500
    else:
        code = 422
    if refusal is not None:
        answer.update(allowed=False, status={"code": code, "message": refusal})
    return {"apiVersion": review.get("apiVersion") or "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": answer}


def register_in_loop(registry: kopf.OperatorRegistry) -> None:
    """kopf.on.validate handlers for every kind (benchmark baseline only, see the module doc)."""
    for info in KINDS:
        _register(registry, info)


def _register(registry: kopf.OperatorRegistry, info: KindInfo) -> None:
    @kopf.on.validate(GROUP, VERSION, info.plural, id=webhook_path(info), registry=registry)
    async def validate(spec: kopf.Spec, memo: kopf.Memo, **kwargs: Any) -> None:
        old: Any = kwargs.get("old")
        refusal = check(info.kind, kwargs.get("operation") or "UNKNOWN", dict(spec),
                        dict(old.get("spec") or {}) if old else None, memo.settings)
        if refusal is not None:
            raise kopf.AdmissionError(refusal, code=422)
