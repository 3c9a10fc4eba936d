"""Initial status for every kind, so `kubectl get` shows a phase from the first second.

Kinds with a real reconciler register their own create handlers; this covers the rest.
"""

from __future__ import annotations

from typing import Any

import kopf

from .. import conditions as cond
from ..api import KINDS, KindInfo
from ..constants import GROUP, VERSION

INITIAL_PHASE = {"TrainingJob": "Pending", "ModelVersion": "Pending", "Deployment": "Progressing",
                 "FlywheelPolicy": "Collecting"}
RECONCILED: set[str] = set()  # kinds whose reconciler writes their status itself


def initial_status(kind: str, generation: int | None) -> dict[str, Any]:
    return {
        "phase": INITIAL_PHASE[kind],
        "message": "accepted; waiting for the reconciler",
        "observedGeneration": generation,
        "conditions": cond.set_condition([], cond.READY, False, cond.AWAITING_RECONCILER,
                                         f"{kind} accepted", generation),
    }


def _register(info: KindInfo) -> None:
    @kopf.on.create(GROUP, VERSION, info.plural, id=f"initial-status-{info.plural}",
                    when=lambda **_: info.kind not in RECONCILED)
    def create(meta: kopf.Meta, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
        patch.status.update(initial_status(info.kind, meta.get("generation")))
        logger.info("%s accepted", info.kind)


for _info in KINDS:
    _register(_info)
