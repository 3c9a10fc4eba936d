"""What `kubectl acgs dashboard` shows, as JSON: pure functions from a namespace's objects (the same
Snapshot `get` draws) and the servers' scraped latency to the page's state."""

from __future__ import annotations

from typing import Any

from .tree import Snapshot

# A Deployment's serving figures from its servers' /metrics (meanLatencySeconds None: no request yet).
Serving = dict[str, float | None]

GATE_CONDITIONS = ("PromotionBlocked", "Available", "Progressing", "Ready")


def _s(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return obj.get(key) or {}


def training_jobs(snap: Snapshot) -> list[dict[str, Any]]:
    out = []
    for tj in sorted(snap.training_jobs, key=lambda o: o["metadata"]["name"]):
        progress, privacy = _s(_s(tj, "status"), "progress"), _s(_s(tj, "spec"), "privacy")
        out.append({"name": tj["metadata"]["name"], "phase": _s(tj, "status").get("phase"),
                    "percent": progress.get("percent"), "step": progress.get("step"),
                    "totalSteps": progress.get("totalSteps"), "loss": progress.get("loss"),
                    "epsilon": progress.get("epsilon"),
                    "targetEpsilon": privacy.get("targetEpsilon") if privacy.get("enabled", True) else None,
                    "modelVersion": _s(tj, "status").get("modelVersion")})
    return out


def model_versions(snap: Snapshot) -> list[dict[str, Any]]:
    out = []
    for mv in sorted(snap.model_versions, key=lambda o: o["metadata"]["name"]):
        spec = _s(mv, "spec")
        lineage, metrics = _s(spec, "lineage"), _s(spec, "metrics")
        out.append({"name": mv["metadata"]["name"], "version": spec.get("version"), "stage": spec.get("stage"),
                    "phase": _s(mv, "status").get("phase"), "parent": lineage.get("parentVersion"),
                    "trainingJob": lineage.get("trainingJob"), "complianceScore": metrics.get("complianceScore"),
                    "accuracy": metrics.get("accuracy"), "epsilon": metrics.get("epsilon")})
    return out


def deployments(snap: Snapshot, serving: dict[str, Serving]) -> list[dict[str, Any]]:
    out = []
    for dep in sorted(snap.deployments, key=lambda o: o["metadata"]["name"]):
        name, st, spec = dep["metadata"]["name"], _s(dep, "status"), _s(dep, "spec")
        conditions = [{k: c.get(k) for k in ("type", "status", "reason", "message")}
                      for c in st.get("conditions") or [] if c.get("type") in GATE_CONDITIONS]
        out.append({"name": name, "phase": st.get("phase"), "activeColor": st.get("activeColor"),
                    "activeModelVersion": st.get("activeModelVersion"),
                    "previewColor": st.get("previewColor"), "previewModelVersion": st.get("previewModelVersion"),
                    "desiredModelVersion": st.get("desiredModelVersion"), "readyReplicas": st.get("readyReplicas"),
                    "heldBack": _s(st, "rollout").get("heldBack"), "history": (st.get("history") or [])[-10:],
                    "conditions": conditions, "gates": _s(spec, "promotion"), "serving": serving.get(name) or {}})
    return out


def flywheel(snap: Snapshot) -> list[dict[str, Any]]:
    return [{"name": p["metadata"]["name"], "deployment": _s(p, "spec").get("deploymentRef"),
             "phase": _s(p, "status").get("phase"), "recordsSeen": _s(p, "status").get("recordsSeen"),
             "lastRun": _s(p, "status").get("lastRun"), "recommendation": _s(p, "status").get("recommendation"),
             "candidates": _s(p, "status").get("candidates") or []}
            for p in sorted(snap.flywheel_policies, key=lambda o: o["metadata"]["name"])]


def state(snap: Snapshot, serving: dict[str, Serving] | None = None) -> dict[str, Any]:
    return {"namespace": snap.namespace, "trainingJobs": training_jobs(snap), "modelVersions": model_versions(snap),
            "deployments": deployments(snap, serving or {}), "flywheelPolicies": flywheel(snap)}


def latency_from_metrics(texts: list[str]) -> Serving:
    """Requests and mean latency (s) over the servers' /metrics texts of one Deployment."""
    total, count, requests, errors = 0.0, 0.0, 0.0, 0.0
    for text in texts:
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, value = line.rsplit(" ", 1)
            if name.startswith("acgs_server_request_latency_seconds_sum"):
                total += float(value)
            elif name.startswith("acgs_server_request_latency_seconds_count"):
                count += float(value)
            elif name.startswith("acgs_server_requests_total"):
                requests += float(value)
                if 'status_code="5' in name:
                    errors += float(value)
    return {"requests": requests, "errors": errors, "meanLatencySeconds": total / count if count else None} \
        if count or requests else {}
