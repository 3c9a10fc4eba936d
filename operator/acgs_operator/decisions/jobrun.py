"""Read a batch/v1 Job and its pods into one observation: phase, reason, times and the program's
result (its JSON termination message). Pure: the handlers fetch, this interprets. Used for the
trainer Job of a TrainingJob and the verification Job of a ModelVersion."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from acgs_contract import exitcodes

from .. import conditions as cond


class JobPhase(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


PENDING, RUNNING, SUSPENDED = JobPhase.PENDING, JobPhase.RUNNING, JobPhase.SUSPENDED
SUCCEEDED, FAILED = JobPhase.SUCCEEDED, JobPhase.FAILED

# Trainer exit codes → condition reasons: the contract's reason of each code.
EXIT_REASONS = {code: reason for code, reason in exitcodes.REASONS.items() if code != exitcodes.SUCCESS}
JOB_REASONS = {"DeadlineExceeded": cond.DEADLINE_EXCEEDED, "BackoffLimitExceeded": cond.BACKOFF_LIMIT_EXCEEDED}


@dataclass
class Observation:
    phase: JobPhase
    reason: str
    message: str
    start_time: str | None = None
    completion_time: str | None = None
    exit_code: int | None = None
    result: dict[str, Any] | None = None
    pods: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _job_condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or []
                 if c.get("type") == type_ and c.get("status") == "True"), None)


def _terminated(pod: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    status = pod.get("status") or {}
    out = []
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if term:
            out.append((cs.get("name", ""), term))
    return out


def parse_message(text: str | None) -> dict[str, Any] | None:
    """The JSON result a container wrote to its termination-message path, if it is one."""
    if not text:
        return None
    try:
        value = json.loads(text.strip())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _newest_first(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)


def last_termination(pods: list[dict[str, Any]], container: str | None = None,
                     failed_only: bool = False) -> tuple[int, str, dict[str, Any] | None] | None:
    """(exit code, raw message, parsed result) of the newest terminated container: a failing one
    first when `failed_only`, else the named container (or any)."""
    for pod in _newest_first(pods):
        for name, term in _terminated(pod):
            code = int(term.get("exitCode", 0))
            if failed_only and code == 0:
                continue
            if container and not failed_only and name != container:
                continue
            message = term.get("message") or ""
            return code, message, parse_message(message)
    return None


def observe(job: dict[str, Any] | None, pods: list[dict[str, Any]], container: str) -> Observation:
    if job is None:
        return Observation(PENDING, cond.PENDING, "waiting for the Job to be created")
    status = job.get("status") or {}
    times: dict[str, Any] = {"start_time": status.get("startTime"), "completion_time": status.get("completionTime"),
             "pods": len(pods)}
    if _job_condition(job, "Complete"):
        # A gang's pods all succeed, but only rank 0's carries the result (the others write none).
        term = next((t for t in (last_termination([p], container) for p in _newest_first(pods))
                     if t and t[2] is not None), None) or last_termination(pods, container)
        code, raw, result = term if term else (0, "", None)
        return Observation(SUCCEEDED, cond.SUCCEEDED, (result or {}).get("message") or "the Job completed",
                           exit_code=code, result=result, **times)
    failed = _job_condition(job, "Failed")
    if failed:
        failed_term = last_termination(pods, failed_only=True)
        failed_code: int | None = failed_term[0] if failed_term else None
        raw, result = (failed_term[1], failed_term[2]) if failed_term else ("", None)
        job_reason = failed.get("reason", "")
        if job_reason == "PodFailurePolicy" and failed_code in EXIT_REASONS:
            reason = EXIT_REASONS[failed_code]
        else:
            reason = JOB_REASONS.get(job_reason) or (EXIT_REASONS.get(failed_code, cond.JOB_FAILED) if failed_code
                                                     else cond.JOB_FAILED)
        detail = (result or {}).get("message") or raw.strip()[-800:] or failed.get("message", "")
        prefix = f"exit code {failed_code}: " if failed_code is not None else ""
        times["completion_time"] = times["completion_time"] or failed.get("lastTransitionTime")
        return Observation(FAILED, reason, f"{prefix}{detail}".strip(), exit_code=failed_code, result=result, **times)
    if (job.get("spec") or {}).get("suspend"):
        return Observation(SUSPENDED, cond.JOB_SUSPENDED, "the Job is suspended (queued or preempted)", **times)
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp")]
    if running:
        retries = int(status.get("failed") or 0)
        note = f" (retry {retries} of {job['spec'].get('backoffLimit', 0)})" if retries else ""
        return Observation(RUNNING, cond.POD_RUNNING, f"pod {running[0]['metadata']['name']} is running{note}",
                           **times)
    starting = [p for p in pods if (p.get("status") or {}).get("phase", "Pending") == "Pending"
                and not p["metadata"].get("deletionTimestamp")]
    finished = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
    if starting:
        return Observation(PENDING, cond.PENDING, "waiting for a pod to start", **times)
    if finished or _job_condition(job, "SuccessCriteriaMet") or _job_condition(job, "FailureTarget"):
        # The trainer has exited but the Job controller has not concluded yet: still this run, not
        # a new wait (reporting Pending here would make the phase go backwards for a moment).
        return Observation(RUNNING, cond.POD_RUNNING, "the trainer exited; waiting for the Job to conclude", **times)
    return Observation(PENDING, cond.PENDING, "waiting for a pod to start", **times)
