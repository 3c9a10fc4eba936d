"""A ModelVersion's verification status from its verification Job: pure. The handler observes the
Job and its pods (`jobrun.observe`), calls `decide`, writes the status and posts the event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import conditions as cond
from ..api.modelversion import ModelVersionPhase
from ..builders.modelversion import EXIT_ARTIFACT_ERROR, RESULT_FAILED, RESULT_SUCCEEDED
from ..events import NORMAL, WARNING, Event
from . import jobrun

MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class Decision:
    phase: ModelVersionPhase
    status: dict[str, Any]
    event: Event | None = None  # posted when the version became Ready or Invalid


def status(old: dict[str, Any], phase: ModelVersionPhase, verified: bool | str, reason: str, message: str,
           generation: int | None, **extra: Any) -> dict[str, Any]:
    """The Verified and Ready conditions, phase and message, plus `extra` status fields."""
    conditions = cond.set_condition(old.get("conditions"), cond.VERIFIED, verified, reason, message, generation)
    conditions = cond.set_condition(conditions, cond.READY, phase is ModelVersionPhase.READY, reason, message,
                                    generation)
    return {"phase": phase.value, "message": message[:MESSAGE_LIMIT], "conditions": conditions,
            "observedGeneration": generation, **extra}


def decide(run: jobrun.Observation, expected_digest: str, old: dict[str, Any], generation: int | None,
           now: str) -> Decision:
    """`run`: the observed verification Job; `now`: the time to record when it has none."""
    result = run.result or {}  # acgs-train verify's JSON
    verified = result.get("phase") == RESULT_SUCCEEDED and result.get("digest") == expected_digest
    verified_condition: bool | str = "Unknown"
    phase, reason = ModelVersionPhase.PENDING, cond.VERIFYING
    extra: dict[str, Any] = {}
    if run.phase is jobrun.SUCCEEDED and verified:
        phase, verified_condition, reason = ModelVersionPhase.READY, True, cond.DIGEST_VERIFIED
        message = f"manifest, {result.get('fileCount')} files and digest {expected_digest} verified"
        extra = {"verifiedDigest": expected_digest, "verifiedAt": run.completion_time or now}
    elif run.phase is jobrun.SUCCEEDED:
        verified_condition, reason = False, cond.RESULT_MISSING
        message = ("the verification Job finished without a verification result in its termination "
                   "message; the artifact is not verified")
    elif run.phase is jobrun.FAILED and result.get("phase") == RESULT_FAILED \
            and run.exit_code == EXIT_ARTIFACT_ERROR:
        # reason: the trainer's ArtifactError code (FileDigestMismatch, ...); the message names the file.
        phase, verified_condition, reason = ModelVersionPhase.INVALID, False, cond.ARTIFACT_ERROR
        message = f"{result.get('reason')}: {result.get('message')}"
    elif run.phase is jobrun.FAILED:
        phase, verified_condition, reason = ModelVersionPhase.INVALID, False, run.reason
        message = result.get("message") or run.message
    else:
        message = f"verifying the artifact: {run.message}"
    new = status(old, phase, verified_condition, reason, message, generation, **extra)
    event = None
    if old.get("phase") != phase.value and phase is not ModelVersionPhase.PENDING:
        event = Event(NORMAL if phase is ModelVersionPhase.READY else WARNING, reason, new["message"])
    return Decision(phase, new, event)
