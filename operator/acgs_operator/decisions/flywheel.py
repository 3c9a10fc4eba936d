"""A FlywheelPolicy's status from its collector's result, and whether a run starts: pure.

The handler observes the collector Job (`jobrun.observe`) and the policy, calls these, writes the
status and posts the events. A run is recorded on a snapshot (the usable records' digest and
count) when usable ≥ thresholds.minRecords and intervalSeconds have passed since the last run, or
when the acgs.io/run-now annotation carries a value not acted on yet; one run at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from acgs_contract import flywheel as contract
from acgs_contract import timefmt
from acgs_contract.result import SUCCEEDED

from .. import conditions as cond
from ..api.flywheel import FlywheelPolicyPhase, FlywheelPolicySpec, FlywheelRun, RunPhase
from ..events import NORMAL, WARNING, Event
from . import flywheel_decide as fd

ANNOTATION_RUN_NOW = "acgs.io/run-now"
# How often the interaction log is counted again (a collection is one short Job).
COLLECT_EVERY_SECONDS = 60
TRIGGER_THRESHOLD, TRIGGER_RUN_NOW = "Threshold", "RunNow"

# Condition reasons (the Ready condition of a FlywheelPolicy).
COLLECTED = "Collected"
COLLECTING = cond.COLLECTING
DEPLOYMENT_NOT_FOUND = "DeploymentNotFound"
NO_INTERACTION_LOG_PVC = "NoInteractionLogPvc"
INTERACTION_LOG_PVC_NOT_FOUND = "InteractionLogPvcNotFound"
COLLECT_FAILED = "CollectFailed"
RUN_TRIGGERED = "RunTriggered"
RUN_IN_PROGRESS = "RunInProgress"
NOT_ENOUGH_RECORDS = "NotEnoughRecords"
RUN_FAILED = "RunFailed"


@dataclass
class Decision:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)


def collect_due(status: dict[str, Any], now: str, run_now: str | None) -> bool:
    """A new collection is due: none yet, the last one is COLLECT_EVERY_SECONDS old, or a run-now
    request waits (it runs on a fresh count)."""
    last = status.get("lastCollected")
    if not last or (run_now and run_now != status.get("runNowHandled")):
        return True
    return timefmt.parse_time(now) - timefmt.parse_time(last) >= COLLECT_EVERY_SECONDS


def blocked(old: dict[str, Any], reason: str, message: str, generation: int | None) -> dict[str, Any]:
    """The policy cannot collect (a missing Deployment or claim): Failed and Stalled (it needs a
    person), naming the field; it recovers by itself once the field's object exists."""
    return {"phase": FlywheelPolicyPhase.FAILED.value, "message": message, "observedGeneration": generation,
            "conditions": cond.kstatus(old.get("conditions"), ready=False, stalled=True, reason=reason,
                                       message=message, generation=generation)}


def run_id(policy_uid: str, started: str, digest: str) -> str:
    return "run-" + hashlib.sha256(f"{policy_uid}/{started}/{digest}".encode()).hexdigest()[:10]


def _seconds_since(then: str | None, now: str) -> float | None:
    return None if not then else timefmt.parse_time(now) - timefmt.parse_time(then)


def collected(old: dict[str, Any], spec: FlywheelPolicySpec, result: contract.CollectResult, *,
              policy_uid: str, run_now: str | None, generation: int | None, now: str) -> Decision:
    """The status after a collection (`result` from the collector's termination message), with a
    run recorded when one is due."""
    if result.phase != SUCCEEDED:
        message = f"the collector failed: {result.reason}: {result.message}"
        return Decision(blocked(old, COLLECT_FAILED, message, generation), [Event(WARNING, COLLECT_FAILED, message)])
    status: dict[str, Any] = {
        "recordsSeen": result.records_seen, "recordsUsable": result.records_usable,
        "recordsExcluded": dict(result.excluded), "snapshotDigest": result.snapshot_digest,
        "lastCollected": now, "observedGeneration": generation,
    }
    events: list[Event] = []
    current = old.get("currentRun")
    wants_run_now = bool(run_now) and run_now != old.get("runNowHandled")
    since_last = _seconds_since(old.get("lastRun"), now)
    threshold_met = result.records_usable >= spec.thresholds.min_records
    interval_passed = since_last is None or since_last >= spec.interval_seconds
    trigger = TRIGGER_RUN_NOW if wants_run_now else (TRIGGER_THRESHOLD if threshold_met and interval_passed
                                                     else None)
    if wants_run_now:
        status["runNowHandled"] = run_now
    if trigger and current:
        message = f"run {current['id']} is still {current['phase']}; one run at a time, no new run started"
        events.append(Event(WARNING if wants_run_now else NORMAL, RUN_IN_PROGRESS, message))
        reason = RUN_IN_PROGRESS
    elif trigger and result.records_usable == 0:
        message = "no usable records to snapshot; no run started"
        events.append(Event(WARNING, NOT_ENOUGH_RECORDS, message))
        reason = NOT_ENOUGH_RECORDS
    elif trigger:
        digest = str(result.snapshot_digest)
        run = FlywheelRun(id=run_id(policy_uid, now, digest), phase=RunPhase.PREPARING.value, trigger=trigger,
                          started=now, records=result.records_usable, snapshot_digest=digest)
        status["currentRun"] = run.to_api()
        status["lastRun"] = now
        message = (f"run {run.id} triggered ({trigger}) on {run.records} usable records, snapshot {digest}; "
                   "preparing its data")
        events.append(Event(NORMAL, RUN_TRIGGERED, message))
        reason = RUN_TRIGGERED
    else:
        reason = COLLECTED if current else COLLECTING
        message = result.message
        if not current and not threshold_met:
            message += f"; a run starts at {spec.thresholds.min_records} (thresholds.minRecords)"
        elif not current:
            message += f"; next run after spec.intervalSeconds={spec.interval_seconds} from the last one"
    return Decision({**status, **standing({**old, **status}, reason, message, generation)}, events)


def policy_phase(status: dict[str, Any]) -> str:
    """Evaluating while a run is in progress; else what the last run left: Failed, Recommending (a
    winner with a ModelVersion not promoted yet), Idle (decided); Collecting before any run."""
    if status.get("currentRun"):
        return FlywheelPolicyPhase.EVALUATING.value
    last = status.get("lastRunResult") or {}
    if not last:
        return FlywheelPolicyPhase.COLLECTING.value
    if last.get("phase") == RunPhase.FAILED.value:
        return FlywheelPolicyPhase.FAILED.value
    winner = next((c for c in status.get("candidates") or [] if c.get("name") == last.get("winner")), None)
    if winner is not None and not last.get("promoted") and fd.promotable(winner) is None:
        return FlywheelPolicyPhase.RECOMMENDING.value
    return FlywheelPolicyPhase.IDLE.value


def standing(status: dict[str, Any], reason: str, message: str, generation: int | None) -> dict[str, Any]:
    """phase, message and the kstatus conditions of a collecting policy with `status` (merged): a
    failed last run makes it not Ready (Argo CD: Degraded) until the next run succeeds; it is not
    Stalled, as the next trigger tries again."""
    phase = policy_phase(status)
    last = status.get("lastRunResult") or {}
    ready = phase != FlywheelPolicyPhase.FAILED.value
    if not ready:
        reason, message = RUN_FAILED, f"run {last.get('id')} failed: {last.get('message')}; {message}"
    return {"phase": phase, "message": message[:2000],
            "conditions": cond.kstatus(status.get("conditions"), ready=ready, stalled=False, reason=reason,
                                       message=message, generation=generation)}
