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


FLYWHEEL_MESSAGE = ("collecting interactions through the serving Deployment's log; this operator runs no "
                    "flywheel loop (evaluation, retraining) for it yet")


def initial_status(kind: str, generation: int | None) -> dict[str, Any]:
    if kind == "FlywheelPolicy":
        # Collecting is its steady state, and nothing else will happen to it: Ready, not forever
        # Reconciling (kstatus tools would wait on it for ever).
        return {"phase": INITIAL_PHASE[kind], "message": FLYWHEEL_MESSAGE, "observedGeneration": generation,
                "conditions": cond.kstatus([], ready=True, stalled=False, reason=cond.COLLECTING,
                                           message=FLYWHEEL_MESSAGE, generation=generation)}
    return {
        "phase": INITIAL_PHASE[kind],
        "message": "accepted; waiting for the reconciler",
        "observedGeneration": generation,
        "conditions": cond.kstatus([], ready=False, stalled=False, reason=cond.AWAITING_RECONCILER,
                                   message=f"{kind} accepted", generation=generation),
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
