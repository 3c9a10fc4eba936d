"""Initial status for every kind, so `kubectl get` shows a phase from the first second.

Kinds with a real reconciler write their status themselves; this covers the rest.
"""

from __future__ import annotations

from typing import Any

import kopf

from .. import conditions as cond
from ..api import KINDS, KindInfo
from ..api.deployment import DeploymentPhase
from ..api.flywheel import FlywheelPolicyPhase
from ..api.modelversion import ModelVersionPhase
from ..api.trainingjob import TrainingJobPhase
from ..constants import GROUP, VERSION

INITIAL_PHASE: dict[str, str] = {
    "TrainingJob": TrainingJobPhase.PENDING.value, "ModelVersion": ModelVersionPhase.PENDING.value,
    "Deployment": DeploymentPhase.PROGRESSING.value, "FlywheelPolicy": FlywheelPolicyPhase.COLLECTING.value,
}


def initial_status(kind: str, generation: int | None) -> dict[str, Any]:
    return {
        "phase": INITIAL_PHASE[kind],
        "message": "accepted; waiting for the reconciler",
        "observedGeneration": generation,
        "conditions": cond.set_condition([], cond.READY, False, cond.AWAITING_RECONCILER,
                                         f"{kind} accepted", generation),
    }


def register(registry: kopf.OperatorRegistry, reconciled: frozenset[str]) -> None:
    """`reconciled`: the kinds whose reconciler writes their status itself (no initial status here)."""
    for info in KINDS:
        if info.kind not in reconciled:
            _register(registry, info)


def _register(registry: kopf.OperatorRegistry, info: KindInfo) -> None:
    @kopf.on.create(GROUP, VERSION, info.plural, id=f"initial-status-{info.plural}", registry=registry)
    def create(meta: kopf.Meta, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
        patch.status.update(initial_status(info.kind, meta.get("generation")))
        logger.info("%s accepted", info.kind)
