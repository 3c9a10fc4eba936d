"""Condition types, reasons (condition and event reasons alike, one name each) and the
metav1.Condition bookkeeping shared by all handlers."""

from __future__ import annotations

from typing import Any

from acgs_contract import exitcodes
from acgs_contract.timefmt import now

# Condition types
READY = "Ready"
CREATED = "Created"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
SUSPENDED = "Suspended"
QUEUED = "Queued"
VERIFIED = "Verified"
AVAILABLE = "Available"
PROGRESSING = "Progressing"
PROMOTION_BLOCKED = "PromotionBlocked"
# kstatus (sigs.k8s.io/cli-utils/pkg/kstatus): Ready is the goal; Reconciling and Stalled are
# "abnormal-true" (True only while working, or after a permanent failure).
RECONCILING = "Reconciling"
STALLED = "Stalled"

# Reasons (CamelCase)
ACCEPTED = "Accepted"
PENDING = "Pending"
INVALID_SPEC = "InvalidSpec"
# A failed trainer's reason is the contract's reason of its exit code.
INVALID_DATA = exitcodes.REASONS[exitcodes.INVALID_DATA]
PRIVACY_BUDGET_EXHAUSTED = exitcodes.REASONS[exitcodes.PRIVACY_BUDGET_EXHAUSTED]
DEADLINE_EXCEEDED = "DeadlineExceeded"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
AWAITING_RECONCILER = "AwaitingReconciler"

# Deployment (blue-green serving) reasons
ACTIVE_READY = "ActiveReady"
ACTIVE_NOT_READY = "ActiveNotReady"
NO_ACTIVE_COLOR = "NoActiveColor"
AWAITING_MODEL_VERSION = "AwaitingModelVersion"
MODEL_VERSION_NOT_FOUND = "ModelVersionNotFound"
MODEL_VERSION_NOT_READY = "ModelVersionNotReady"
MODEL_VERSION_INVALID = "ModelVersionInvalid"
NO_MODEL_VERSION_IN_STAGE = "NoModelVersionInStage"
CONSTITUTIONAL_HASH_MISMATCH = "ConstitutionalHashMismatch"
UNSUPPORTED_ARTIFACT_URI = "UnsupportedArtifactUri"  # the operator cannot mount the artifact (not pvc://)
GATES_NOT_MET = "GatesNotMet"
PREVIEW_STARTING = "PreviewStarting"
PREVIEW_FAILED = "PreviewFailed"
PREVIEW_NOT_READY = "PreviewNotReady"
DIGEST_MISMATCH = "DigestMismatch"
SMOKE_TEST_FAILED = "SmokeTestFailed"
AWAITING_PROMOTION = "AwaitingPromotion"
SCALING_UP_PREVIEW = "ScalingUpPreview"
POST_PROMOTION_CHECKS = "PostPromotionChecks"
POST_PROMOTION_CHECK_FAILED = "PostPromotionCheckFailed"
SCALE_DOWN_PENDING = "ScaleDownPending"
ROLLOUT_COMPLETE = "RolloutComplete"
NOT_BLOCKED = "NotBlocked"
ABORTED = "Aborted"
UNDONE = "Undone"
ROLLED_BACK = "RolledBack"
PROMOTED = "Promoted"
RESOLVED = "Resolved"  # a hold (constitution, image allowlist) that ended
BLOCKED = "Blocked"  # history action: a version the rollout will not promote
SPEC_CHANGED = "SpecChanged"
RETRY = "Retry"
NOTHING_TO_ABORT = "NothingToAbort"
NOTHING_TO_UNDO = "NothingToUndo"
NOTHING_TO_PROMOTE = "NothingToPromote"
PROMOTION_APPROVED = "PromotionApproved"
SCALED_DOWN = "ScaledDown"
PREVIEW_DROPPED = "PreviewDropped"
ROLLOUT_STARTED = "RolloutStarted"
PREVIEW_CHECKS_PASSED = "PreviewChecksPassed"
POST_PROMOTION_CHECKS_PASSED = "PostPromotionChecksPassed"
# TrainingJob / ModelVersion reasons
INVALID_CONFIG = exitcodes.REASONS[exitcodes.INVALID_CONFIG]
UNEXPECTED_ERROR = exitcodes.REASONS[exitcodes.UNEXPECTED_ERROR]
ARTIFACT_ERROR = exitcodes.REASONS[exitcodes.ARTIFACT_ERROR]
JOB_FAILED = "JobFailed"
JOB_CREATED = "JobCreated"
JOB_SUSPENDED = "JobSuspended"
POD_RUNNING = "PodRunning"
PARENT_NOT_FOUND = "ParentNotFound"
MODEL_VERSION_CREATED = "ModelVersionCreated"
RESULT_MISSING = "ResultMissing"
VERIFYING = "Verifying"
DIGEST_VERIFIED = "DigestVerified"
STAGE_CHANGED = "StageChanged"
SPEC_CHANGE_IGNORED = "SpecChangeIgnored"
METRICS_MISMATCH = "MetricsMismatch"
# kstatus reasons
GOAL_REACHED = "GoalReached"  # Reconciling=False / Stalled=False: nothing left to do
WORKING = "Working"  # Stalled=False while Reconciling
COLLECTING = "Collecting"  # FlywheelPolicy: collecting interactions, no run due


def kstatus(conditions: list[dict[str, Any]] | None, *, ready: bool, stalled: bool, reason: str, message: str,
            generation: int | None) -> list[dict[str, Any]]:
    """Ready, Reconciling and Stalled from one outcome, as kstatus reads them: Ready when the goal is
    reached, Stalled on a permanent failure, Reconciling otherwise (never two of them True)."""
    reconciling = not ready and not stalled
    idle_reason = GOAL_REACHED if ready else reason  # why the other two conditions are False
    conditions = set_condition(conditions, READY, ready, reason, message, generation)
    conditions = set_condition(conditions, RECONCILING, reconciling, reason if reconciling else idle_reason,
                               message if reconciling else "", generation)
    return set_condition(conditions, STALLED, stalled, reason if stalled else (WORKING if reconciling else idle_reason),
                         message if stalled else "", generation)


def observe_generation(status: dict[str, Any], generation: int | None) -> dict[str, Any]:
    """`status` with observedGeneration (its own and every condition's) at `generation`: for a spec
    change the operator looked at and that changes no condition (a ModelVersion's stage)."""
    if generation is None:
        return {}
    conditions = [{**c, "observedGeneration": generation} for c in status.get("conditions") or []]
    return {"observedGeneration": generation, "conditions": conditions}


def set_condition(conditions: list[dict[str, Any]] | None, type_: str, status: bool | str, reason: str,
                  message: str = "", generation: int | None = None) -> list[dict[str, Any]]:
    """A new condition list with `type_` set; lastTransitionTime moves only when status flips."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    current = [dict(c) for c in (conditions or [])]
    for cond in current:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now()
            cond.update(status=value, reason=reason, message=message[:32768])
            if generation is not None:
                cond["observedGeneration"] = generation
            return current
    new: dict[str, Any] = {"type": type_, "status": value, "reason": reason, "message": message[:32768],
           "lastTransitionTime": now()}
    if generation is not None:
        new["observedGeneration"] = generation
    return current + [new]


def get_condition(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
