"""Promotion checks: the operator talks to server pods directly, by pod IP (the NetworkPolicy admits
the operator). Pre-promotion checks run against the preview pods, post-promotion checks against the
new active pods; both return a rollout.CheckResult whose reason names what failed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from . import conditions as cond
from .builders.deployment import LABEL_COLOR, LABEL_MODEL_VERSION
from .rollout import CheckResult

SMOKE_PATH = "/constitutional-ai/predict"
# A valid constitutional_ai scenario (the server rejects unknown or missing fields with 400, so a
# schema drift between operator and server shows up as a failed smoke test, not silently).
SMOKE_SCENARIO: dict[str, Any] = {
    "action": "data_access_request", "actor_role": "employee", "data_sensitivity": "internal",
    "consent": True, "risk_level": "low", "audit_logging": True, "human_oversight": True,
    "explanation_provided": True, "affects_protected_group": False, "bias_tested": True,
}


@dataclass(frozen=True)
class PodView:
    name: str
    ip: str | None
    color: str | None
    model_version: str | None
    ready: bool
    terminating: bool


def pod_view(pod: dict[str, Any]) -> PodView:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    labels = meta.get("labels") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return PodView(name=meta.get("name", ""), ip=status.get("podIP"), color=labels.get(LABEL_COLOR),
                   model_version=labels.get(LABEL_MODEL_VERSION), ready=ready,
                   terminating=bool(meta.get("deletionTimestamp")))


def _http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw[:200].decode(errors="replace")


def _url(pod: PodView, port: int, path: str) -> str:
    return f"http://{pod.ip}:{port}{path}"


def load_failure(pod: PodView, port: int, timeout: float) -> tuple[str, str] | None:
    """(reason, message) when a pod's server says it will never be ready (e.g. digest mismatch)."""
    if not pod.ip or pod.ready or pod.terminating:
        return None
    try:
        status, body = _http("GET", _url(pod, port, "/ready"), timeout=timeout)
    except (OSError, urllib.error.URLError):
        return None  # not listening yet
    if status == 200 or not isinstance(body, dict) or body.get("phase") != "Failed":
        return None
    reason = body.get("reason") or {}
    return (str(reason.get("reason") or cond.PREVIEW_FAILED),
            f"pod {pod.name}: {reason.get('reason', 'Failed')}: {reason.get('message', '')}")


def _check_pod(pod: PodView, port: int, digest: str, constitutional_hash: str, smoke: int,
               timeout: float, failed_reason: str | None) -> CheckResult:
    def fail(reason: str, message: str) -> CheckResult:
        return CheckResult(False, failed_reason or reason, f"pod {pod.name} ({pod.ip}): {message}")

    try:
        status, body = _http("GET", _url(pod, port, "/ready"), timeout=timeout)
        if status != 200:
            return fail(cond.PREVIEW_NOT_READY, f"/ready answered {status}: {json.dumps(body)[:300]}")
        status, body = _http("GET", _url(pod, port, "/models"), timeout=timeout)
        served = [m.get("digest") for m in (body or {}).get("models", [])] if isinstance(body, dict) else []
        if status != 200 or served != [digest]:
            return fail(cond.DIGEST_MISMATCH, f"/models reports digest {served or status}, "
                        f"the ModelVersion says {digest}")
        for i in range(smoke):
            status, body = _http("POST", _url(pod, port, SMOKE_PATH), timeout=timeout, body={
                "scenario": SMOKE_SCENARIO, "request": f"acgs-operator smoke test {i + 1}/{smoke}",
                "constitutional_hash": constitutional_hash})
            if status != 200 or not isinstance(body, dict) or body.get("digest") != digest:
                return fail(cond.SMOKE_TEST_FAILED, f"smoke prediction {i + 1}/{smoke} on {SMOKE_PATH} "
                            f"answered {status}: {json.dumps(body)[:300]}")
    except (OSError, urllib.error.URLError) as error:
        return fail(cond.PREVIEW_NOT_READY, f"unreachable: {error}")
    return CheckResult(True)


def pre_promotion(pods: list[PodView], port: int, digest: str, constitutional_hash: str, smoke_requests: int,
                  timeout: float) -> CheckResult:
    """Every ready preview pod is ready, serves the ModelVersion's digest, and the smoke predictions
    (spread over the pods) succeed."""
    if not pods:
        return CheckResult(False, cond.PREVIEW_NOT_READY, "no ready preview pod to check")
    for index, pod in enumerate(pods):
        share = smoke_requests // len(pods) + (1 if index < smoke_requests % len(pods) else 0)
        result = _check_pod(pod, port, digest, constitutional_hash, share, timeout, None)
        if not result.ok:
            return result
    return CheckResult(True)


def post_promotion(pods: list[PodView], port: int, digest: str, constitutional_hash: str, replicas: int,
                   timeout: float) -> CheckResult:
    """After the switch: all `replicas` pods of the new active color stay ready, serve the digest and
    answer a prediction."""
    if len(pods) < replicas:
        return CheckResult(False, cond.POST_PROMOTION_CHECK_FAILED,
                           f"only {len(pods)}/{replicas} pods of the new active color are ready")
    for pod in pods:
        result = _check_pod(pod, port, digest, constitutional_hash, 1, timeout, cond.POST_PROMOTION_CHECK_FAILED)
        if not result.ok:
            return result
    return CheckResult(True)
