"""Prometheus metrics of the operator itself."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ADMISSION_REQUESTS = Counter(
    "acgs_admission_requests_total", "Admission reviews answered, by kind, operation and result.",
    ["kind", "operation", "result"],
)
ADMISSION_LATENCY = Histogram(
    "acgs_admission_duration_seconds", "Time to validate one admission review, by kind.", ["kind"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
RECONCILES = Counter(
    "acgs_reconcile_total", "Reconciliations, by kind and outcome.", ["kind", "outcome"],
)
