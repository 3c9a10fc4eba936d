"""A TrainingJob's status from its child Job: pure. The handler observes the Job and its pods
(`jobrun.observe`), calls `decide`, and when the decision asks for it creates the ModelVersion and
calls `decide` again with it; then it writes the status and posts the event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acgs_contract.result import TrainerResult, parse_trainer_result

from .. import conditions as cond
from ..api.trainingjob import TrainingJobPhase, TrainingProgress
from ..events import NORMAL, WARNING, Event
from . import jobrun
from .queueing import QueueWait

MESSAGE_LIMIT = 2000
RESULT_MISSING_MESSAGE = ("the trainer pod exited 0 but left no result (digest) in its termination message; "
                          "no ModelVersion was created")
# Condition types that follow the phase: True while the phase is theirs, False after.
PHASE_CONDITIONS = ((cond.QUEUED, TrainingJobPhase.QUEUED), (cond.RUNNING, TrainingJobPhase.RUNNING),
                    (cond.SUSPENDED, TrainingJobPhase.SUSPENDED),
                    (cond.SUCCEEDED, TrainingJobPhase.SUCCEEDED), (cond.FAILED, TrainingJobPhase.FAILED))
ANNOUNCED = {TrainingJobPhase.FAILED: WARNING, TrainingJobPhase.RUNNING: NORMAL,
             TrainingJobPhase.SUCCEEDED: NORMAL, TrainingJobPhase.SUSPENDED: NORMAL, TrainingJobPhase.QUEUED: NORMAL}


@dataclass(frozen=True)
class CreatedModelVersion:
    name: str
    digest: str


@dataclass(frozen=True)
class Decision:
    phase: TrainingJobPhase
    status: dict[str, Any]  # the fields to converge status to (written only where they differ)
    needs_model_version: bool = False  # the run succeeded: create its ModelVersion, then decide again
    event: Event | None = None  # posted when the phase changed
    result: TrainerResult | None = None  # what the trainer reported (None: it left no result)


def decide(run: jobrun.Observation, job_name: str | None, old: dict[str, Any], generation: int | None,
           created: CreatedModelVersion | None = None, queued: QueueWait | None = None) -> Decision:
    """`run`: the observed Job (jobrun.observe); `old`: the current status; `created`: the
    ModelVersion the handler made when an earlier call asked for one; `queued`: Kueue's word on a
    Job of a queue (spec.queueName) while it is suspended."""
    phase, reason, message = TrainingJobPhase(run.phase.value), run.reason, run.message
    if phase is TrainingJobPhase.SUSPENDED and queued is not None:
        phase, reason, message = TrainingJobPhase.QUEUED, queued.reason, queued.message
    status: dict[str, Any] = {"phase": phase.value, "message": message[:MESSAGE_LIMIT],
                              "observedGeneration": generation}
    if job_name is not None:
        status["jobName"] = job_name
    if run.start_time:
        status["startTime"] = run.start_time
    if run.completion_time:
        status["completionTime"] = run.completion_time
    result = parse_trainer_result(run.result)  # None: the pod left no result (a crash's log tail)
    if phase is TrainingJobPhase.SUCCEEDED and not old.get("modelVersion"):
        if result is None or not result.digest:
            phase, reason, message = TrainingJobPhase.FAILED, cond.RESULT_MISSING, RESULT_MISSING_MESSAGE
            status.update(phase=phase.value, message=message)
        elif created is None:
            return Decision(phase, status, needs_model_version=True, result=result)
        else:
            status["modelVersion"] = created.name
            status["artifactDigest"] = created.digest
            status["message"] = f"ModelVersion {created.name} created; {message}"[:MESSAGE_LIMIT]
    if phase.terminal and result is not None:
        status["progress"] = final_progress(old.get("progress") or {}, result, phase)
    status["conditions"] = _conditions(old.get("conditions"), phase, reason, status["message"], job_name,
                                       generation)
    event = None
    if old.get("phase") != phase.value and phase in ANNOUNCED:
        event = Event(ANNOUNCED[phase], reason, status["message"])
    return Decision(phase, status, event=event, result=result)


def final_progress(old: dict[str, Any], result: TrainerResult, phase: TrainingJobPhase) -> dict[str, Any]:
    """The last reported progress completed from the trainer's result (shown rounded, ε rounded up)."""
    progress = dict(old)
    for key, value in (("epsilon", result.epsilon), ("step", result.steps), ("totalSteps", result.total_steps)):
        if value is not None:
            progress[key] = value
    if phase is TrainingJobPhase.SUCCEEDED:
        progress["percent"] = 100.0
    return TrainingProgress.model_validate(progress).to_api()


def _conditions(conditions: list[dict[str, Any]] | None, phase: TrainingJobPhase, reason: str, message: str,
                job_name: str | None, generation: int | None) -> list[dict[str, Any]]:
    conditions = cond.set_condition(conditions, cond.CREATED, job_name is not None,
                                    cond.JOB_CREATED if job_name else cond.PENDING,
                                    f"Job {job_name}" if job_name else "no Job yet", generation)
    for type_, type_phase in PHASE_CONDITIONS:
        active = phase is type_phase
        if active or cond.get_condition(conditions, type_):
            conditions = cond.set_condition(conditions, type_, active, reason if active else phase.value,
                                            message if active else "", generation)
    return cond.kstatus(conditions, ready=phase is TrainingJobPhase.SUCCEEDED, stalled=phase is TrainingJobPhase.FAILED,
                        reason=reason, message=message, generation=generation)
