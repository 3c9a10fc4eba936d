"""The blue-green rollout of a Deployment (acgs.io), modelled on Argo Rollouts' blueGreen strategy.

Pure: the handler observes (the desired ModelVersion, the colors' pods, check results), calls
`step`, and carries out the Decision (apply children, write status, post events). `step` asks for
checks through `Decision.needs`; the handler runs them and calls `step` again with the results.

One rollout: the inactive color runs the target at previewReplicaCount → it becomes ready →
pre-promotion checks → promotion (auto, after autoPromotionSeconds, or acgs.io/promote) → the
preview scales to `replicas` → the active Service switches → post-promotion checks for a window
(failure: switch back) → the old color scales down after scaleDownDelaySeconds. A version that
fails is "held back": the live color keeps serving until a new version, or acgs.io/retry.


The package: `model` (observation, decision and their named types), `step` (the decision),
`commands` (acgs.io/promote|abort|undo|retry), `transitions` (switch, hold, block, roll back),
`gates` (promotion gates on recorded metrics) and `status` (phase and conditions from a decision).
"""

from __future__ import annotations

from acgs_contract.timefmt import format_time as ts

from .gates import gate_failures
from .model import (
    POLL_SECONDS,
    CheckResult,
    Checks,
    ColorObs,
    ColorPlan,
    Command,
    Condition,
    Decision,
    Desired,
    Observation,
    Target,
    camel_reason,
    epoch,
    other,
)
from .status import status_fields
from .step import step

COMMANDS = tuple(c.value for c in Command)
PRE_CHECKS, POST_CHECKS = Checks.PRE, Checks.POST

__all__ = [
    "COMMANDS", "POLL_SECONDS", "POST_CHECKS", "PRE_CHECKS", "CheckResult", "Checks", "ColorObs", "ColorPlan",
    "Command", "Condition", "Decision", "Desired", "Observation", "Target", "camel_reason", "epoch",
    "gate_failures", "other", "status_fields", "step", "ts",
]
