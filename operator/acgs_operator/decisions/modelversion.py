"""A ModelVersion's verification status from its verification Job: pure. The handler observes the
Job and its pods (`jobrun.observe`), calls `decide`, writes the status and posts the event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acgs_contract import exitcodes
from acgs_contract import result as contract_result

from .. import conditions as cond
from ..api.modelversion import Metrics, ModelVersionPhase
from ..builders.modelversion import metric_mismatches, verified_metrics
from ..events import NORMAL, WARNING, Event
from . import jobrun

MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class Decision:
    phase: ModelVersionPhase
    status: dict[str, Any]
    event: Event | None = None  # posted when the version became Ready or Invalid


def status(old: dict[str, Any], phase: ModelVersionPhase, verified: bool | str, reason: str, message: str,
           generation: int | None, stalled: bool | None = None, **extra: Any) -> dict[str, Any]:
    """The Verified and kstatus conditions, phase and message, plus `extra` status fields. `stalled`:
    nothing more will happen (default: when Invalid)."""
    conditions = cond.set_condition(old.get("conditions"), cond.VERIFIED, verified, reason, message, generation)
    if stalled is None:
        stalled = phase is ModelVersionPhase.INVALID
    conditions = cond.kstatus(conditions, ready=phase is ModelVersionPhase.READY, stalled=stalled, reason=reason,
                              message=message, generation=generation)
    return {"phase": phase.value, "message": message[:MESSAGE_LIMIT], "conditions": conditions,
            "observedGeneration": generation, **extra}


def decide(run: jobrun.Observation, expected_digest: str, declared: Metrics, old: dict[str, Any],
           generation: int | None, now: str) -> Decision:
    """`run`: the observed verification Job; `declared`: spec.metrics; `now`: the time to record
    when the Job has none."""
    result = contract_result.parse_verify_result(run.result)  # what acgs-train verify wrote
    # A verifier older than this operator reports no figures: not verified (gates would have nothing).
    verified = (result is not None and result.phase == contract_result.SUCCEEDED
                and result.digest == expected_digest and result.metrics is not None)
    figures = verified_metrics(result) if verified and result is not None else None
    mismatches = metric_mismatches(declared, figures) if figures is not None else []
    verified_condition: bool | str = False
    extra: dict[str, Any] = {}
    if run.phase is jobrun.SUCCEEDED and verified and mismatches:
        # The record must say what the artifact says: gates read the verified figures, and a spec
        # claiming others (say, a better complianceScore) is refused outright.
        phase, reason = ModelVersionPhase.INVALID, cond.METRICS_MISMATCH
        message = f"digest {expected_digest} verified, but " + "; ".join(mismatches)
    elif run.phase is jobrun.SUCCEEDED and verified:
        assert result is not None and figures is not None
        phase, verified_condition, reason = ModelVersionPhase.READY, True, cond.DIGEST_VERIFIED
        message = f"manifest, {result.file_count} files and digest {expected_digest} verified"
        extra = {"verifiedDigest": expected_digest, "verifiedAt": run.completion_time or now,
                 "verifiedMetrics": figures.to_api()}
    elif run.phase is jobrun.SUCCEEDED:
        phase, reason = ModelVersionPhase.PENDING, cond.RESULT_MISSING
        message = ("the verification Job finished without a verification result (digest and metrics) "
                   "in its termination message; the artifact is not verified")
    elif run.phase is jobrun.FAILED and result is not None and result.phase == contract_result.FAILED \
            and run.exit_code == exitcodes.ARTIFACT_ERROR:
        # reason: the artifact error code (FileDigestMismatch, ...); the message names the file.
        phase, reason = ModelVersionPhase.INVALID, cond.ARTIFACT_ERROR
        message = f"{result.reason}: {result.message}"
    elif run.phase is jobrun.FAILED:
        phase, reason = ModelVersionPhase.INVALID, run.reason
        message = (result.message if result else "") or run.message
    else:
        phase, verified_condition, reason = ModelVersionPhase.PENDING, "Unknown", cond.VERIFYING
        message = f"verifying the artifact: {run.message}"
    new = status(old, phase, verified_condition, reason, message, generation, **extra)
    event = None
    if old.get("phase") != phase.value and phase is not ModelVersionPhase.PENDING:
        event = Event(NORMAL if phase is ModelVersionPhase.READY else WARNING, reason, new["message"])
    return Decision(phase, new, event)
