"""Prometheus metrics of the operator itself."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .conditions import ABORTED, ROLLED_BACK

# Recorded in the admission webhook's own process (servers/webhook.py); the operator's /metrics
# yields this registry's content collected from that process at scrape time.
ADMISSION_REGISTRY = CollectorRegistry()
ADMISSION_REQUESTS = Counter(
    "acgs_admission_requests_total", "Admission reviews answered, by kind, operation and result.",
    ["kind", "operation", "result"], registry=ADMISSION_REGISTRY,
)
ADMISSION_LATENCY = Histogram(
    "acgs_admission_duration_seconds", "Time to validate one admission review, by kind.", ["kind"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    registry=ADMISSION_REGISTRY,
)
RECONCILES = Counter(
    "acgs_reconcile_total", "Reconciliations, by kind and outcome.", ["kind", "outcome"],
)

# --- serving and flywheel: what the alerts in manifests/monitoring/prometheusrule.yaml watch ----
ROLLBACKS = Counter(
    "acgs_deployment_rollbacks_total",
    "Rollbacks of a Deployment to its previous ModelVersion, by trigger: automatic (a failed "
    "post-promotion check) or abort (a person's acgs.io/abort). Both start at 0 when the Deployment is "
    "first reconciled, so increase() sees the first rollback.",
    ["namespace", "deployment", "trigger"],
)
ACTIVE_COMPLIANCE = Gauge(
    "acgs_deployment_active_compliance_score",
    "complianceScore of the ModelVersion a Deployment's active color serves, with that version's stage.",
    ["namespace", "deployment", "model_version", "stage"],
)
COMPLIANCE_GATE = Gauge(
    "acgs_deployment_min_compliance_score",
    "The Deployment's spec.promotion.minComplianceScore (the gate a served version must meet).",
    ["namespace", "deployment"],
)
FLYWHEEL_RUNS = Counter(
    "acgs_flywheel_runs_total",
    "Flywheel runs (retrain on logged interactions) finished, by FlywheelPolicy and outcome "
    "(succeeded, failed); both start at 0 when the policy is first reconciled (observe_flywheel_policy).",
    ["namespace", "policy", "outcome"],
)
FLYWHEEL_CANDIDATES = Counter(
    "acgs_flywheel_candidates_evaluated_total",
    "Flywheel candidates (and the production model) a run finished with, by kind (FineTune, Base, "
    "InContext, Production) and result (Winner, Accepted, Rejected, Evaluated, Failed).",
    ["namespace", "policy", "kind", "result"],
)
FLYWHEEL_PROMOTIONS = Counter(
    "acgs_flywheel_promotions_total",
    "ModelVersions a FlywheelPolicy moved to stage production, by trigger (auto: autoPromote; "
    "annotation: acgs.io/promote).",
    ["namespace", "policy", "trigger"],
)
FLYWHEEL_RECORDS = Gauge(
    "acgs_flywheel_records",
    "Records of the interaction log at the last collection, by reason: usable, or why excluded.",
    ["namespace", "policy", "reason"],
)
FLYWHEEL_BUDGET_EPSILON = Gauge(
    "acgs_flywheel_budget_max_epsilon",
    "Largest cumulative DP ε any logged record has been charged across the policy's runs.",
    ["namespace", "policy"],
)
FLYWHEEL_RETIRED = Gauge(
    "acgs_flywheel_retired_records",
    "Records retired from training because their cumulative ε would pass spec.recordEpsilonLimit.",
    ["namespace", "policy"],
)

ROLLBACK_TRIGGERS = ("automatic", "abort")
PROMOTION_TRIGGERS = ("auto", "annotation")
FLYWHEEL_OUTCOMES = ("succeeded", "failed")
_served: dict[tuple[str, str], tuple[str, str]] = {}  # (namespace, deployment) -> labels last exported


def observe_deployment(namespace: str, name: str, min_compliance: float, active: dict[str, Any] | None,
                       history: list[dict[str, Any]]) -> None:
    """Export one reconcile's serving state: the gate, the served version's score, new rollbacks.

    `active` is the served ModelVersion object (None: nothing served); `history` the entries this
    reconcile added to status.history."""
    COMPLIANCE_GATE.labels(namespace, name).set(min_compliance)
    key = (namespace, name)
    spec = (active or {}).get("spec") or {}
    score = (spec.get("metrics") or {}).get("complianceScore")
    labels = ((active or {}).get("metadata", {}).get("name", ""), str(spec.get("stage", "")))
    old = _served.pop(key, None)
    if old is not None and (old != labels or score is None):
        ACTIVE_COMPLIANCE.remove(namespace, name, *old)
    if active is not None and score is not None:
        ACTIVE_COMPLIANCE.labels(namespace, name, *labels).set(float(score))
        _served[key] = labels
    for trigger in ROLLBACK_TRIGGERS:
        ROLLBACKS.labels(namespace, name, trigger)  # exported at 0 from the start
    for entry in history:
        if entry.get("action") == ROLLED_BACK:
            trigger = "abort" if entry.get("reason") == ABORTED else "automatic"
            ROLLBACKS.labels(namespace, name, trigger).inc()


def forget_deployment(namespace: str, name: str) -> None:
    """A deleted Deployment's gauges go away with it (a stale score would keep alerting)."""
    old = _served.pop((namespace, name), None)
    if old is not None:
        ACTIVE_COMPLIANCE.remove(namespace, name, *old)
    for family, labels in ((COMPLIANCE_GATE, ()), *((ROLLBACKS, (t,)) for t in ROLLBACK_TRIGGERS)):
        try:
            family.remove(namespace, name, *labels)
        except KeyError:
            pass


def observe_flywheel_policy(namespace: str, policy: str) -> None:
    """For the FlywheelPolicy reconciler: export the policy's run counters at 0 from the start."""
    for outcome in FLYWHEEL_OUTCOMES:
        FLYWHEEL_RUNS.labels(namespace, policy, outcome)
    for trigger in PROMOTION_TRIGGERS:
        FLYWHEEL_PROMOTIONS.labels(namespace, policy, trigger)


def observe_flywheel_run(namespace: str, policy: str, succeeded: bool) -> None:
    """For the FlywheelPolicy reconciler: one run finished (AcgsFlywheelRunFailed pages on failures)."""
    observe_flywheel_policy(namespace, policy)
    FLYWHEEL_RUNS.labels(namespace, policy, "succeeded" if succeeded else "failed").inc()


def observe_flywheel_candidates(namespace: str, policy: str, candidates: list[dict[str, Any]]) -> None:
    """A run finished with these candidates (status.candidates entries)."""
    for c in candidates:
        FLYWHEEL_CANDIDATES.labels(namespace, policy, str(c.get("kind")), str(c.get("state"))).inc()


def observe_flywheel_promotion(namespace: str, policy: str, trigger: str) -> None:
    FLYWHEEL_PROMOTIONS.labels(namespace, policy, trigger).inc()


def observe_flywheel_records(namespace: str, policy: str, usable: int, excluded: dict[str, int]) -> None:
    FLYWHEEL_RECORDS.labels(namespace, policy, "usable").set(usable)
    for reason, count in excluded.items():
        FLYWHEEL_RECORDS.labels(namespace, policy, reason).set(count)


def observe_flywheel_budget(namespace: str, policy: str, budget: dict[str, Any] | None) -> None:
    if budget and budget.get("maxEpsilon") is not None:
        FLYWHEEL_BUDGET_EPSILON.labels(namespace, policy).set(float(budget["maxEpsilon"]))
    if budget and budget.get("retiredRecords") is not None:
        FLYWHEEL_RETIRED.labels(namespace, policy).set(float(budget["retiredRecords"]))
