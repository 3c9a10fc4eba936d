"""Promotion gates: the metrics verified from a ModelVersion's artifact (status.verifiedMetrics,
never what its spec declares; selection.to_target hands them over) against spec.promotion."""

from __future__ import annotations

from typing import Any

from ..api.deployment import PromotionGates


def gate_failures(metrics: dict[str, Any], gates: PromotionGates) -> list[str]:
    """What keeps a ModelVersion's verified metrics from passing spec.promotion."""
    failures = []
    for key, minimum, spec_name in (("complianceScore", gates.min_compliance_score, "minComplianceScore"),
                                    ("accuracy", gates.min_accuracy, "minAccuracy")):
        if minimum <= 0:
            continue
        value = metrics.get(key)
        if value is None:
            failures.append(f"verified metrics.{key}: the artifact's {key} is not reported or not verified yet "
                            f"(spec.promotion.{spec_name} is {minimum})")
        elif value < minimum:
            failures.append(f"verified metrics.{key} {value:.4f} < spec.promotion.{spec_name} {minimum}")
    return failures
