"""How a Deployment (acgs.io) scales and survives disruption: the HorizontalPodAutoscaler and the
PodDisruptionBudget of its active color, and the replica count the rollout works with. Pure.

Both objects name the ACTIVE color, so a blue-green switch retargets them on the same reconcile
that moves the active Service. The HPA writes `spec.replicas` of that color's apps/v1 Deployment;
the operator applies that same count back (`active_replicas`) instead of `spec.replicas`, so the
two never fight, and a preview is scaled to it before promotion."""

from __future__ import annotations

from typing import Any

from ..api.deployment import Color, DeploymentSpec, ScalingMetric
from .common import Owner, child_labels, child_metadata, child_name
from .deployment import COMPONENT, KIND, LABEL_COLOR, color_selector, deployment_name

QUEUE_DEPTH_METRIC = "acgs_server_queue_depth"  # server_image/acgs_server/metrics.py


def autoscaler_name(owner: str) -> str:
    return child_name(owner, "server")


def disruption_budget_name(owner: str) -> str:
    return child_name(owner, "server")


def active_replicas(spec: DeploymentSpec, current: int | None) -> int:
    """Pods the active color should run: spec.replicas, or under autoscaling what the HPA last set
    (`current`, the color's spec.replicas) kept within [minReplicas, maxReplicas]; minReplicas
    when nothing runs yet."""
    scaling = spec.autoscaling
    if scaling is None:
        return spec.replicas
    if current is None or current < 1:
        return scaling.min_replicas
    return max(scaling.min_replicas, min(scaling.max_replicas, current))


def _metric(spec: DeploymentSpec) -> dict[str, Any]:
    assert spec.autoscaling is not None
    scaling = spec.autoscaling
    if scaling.metric == ScalingMetric.QUEUE_DEPTH.value:
        return {"type": "Pods", "pods": {"metric": {"name": QUEUE_DEPTH_METRIC},
                                         "target": {"type": "AverageValue", "averageValue": str(scaling.target)}}}
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": scaling.target}}}


def _active_color(owner: Owner, spec: DeploymentSpec, active: Color | str) -> tuple[str, dict[str, str]]:
    """The active color's name and the labels of a child that follows it."""
    color = str(getattr(active, "value", active))
    return color, child_labels(KIND, owner.name, spec.constitutional_hash, COMPONENT, {LABEL_COLOR: color})


def horizontal_pod_autoscaler(owner: Owner, spec: DeploymentSpec, active: Color | str) -> dict[str, Any]:
    """autoscaling/v2 HPA of the active color (call only when spec.autoscaling is set)."""
    assert spec.autoscaling is not None, "horizontal_pod_autoscaler needs spec.autoscaling"
    color, labels = _active_color(owner, spec, active)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(owner, autoscaler_name(owner.name), labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": deployment_name(owner.name, color)},
            "minReplicas": spec.autoscaling.min_replicas,
            "maxReplicas": spec.autoscaling.max_replicas,
            "metrics": [_metric(spec)],
            # A model server takes seconds to load: scale down slowly, so a burst that comes back
            # does not wait for new pods to load the model again.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def pod_disruption_budget(owner: Owner, spec: DeploymentSpec, active: Color | str) -> dict[str, Any]:
    """At most one serving pod of the active color evicted at a time (a drain, an upgrade). maxUnavailable,
    not minAvailable: a single-replica Deployment can still be drained. Pods that are not ready may
    always be evicted, so a crash-looping pod never blocks a node drain."""
    color, labels = _active_color(owner, spec, active)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(owner, disruption_budget_name(owner.name), labels),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": color_selector(owner.name, color)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
