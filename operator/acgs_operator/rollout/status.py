"""Phase, message and conditions of a Deployment from what `step` decided and found, and the status
fields the handler writes."""

from __future__ import annotations

from typing import Any

from .. import conditions as cond
from ..api.deployment import DeploymentPhase
from .model import POLL_SECONDS, Condition, Decision, Observation, Reasoned, Situation


def summarize(obs: Observation, d: Decision, sit: Situation) -> None:
    """Set the phase, message, conditions and ready replicas of `d` from what the paths found."""
    st, active = d.state, d.active_color
    seen = obs.color(active)
    ready = seen.ready if active and seen.model_version == d.active_model_version else 0
    d.ready_replicas = ready
    if active is None:
        available = (False, cond.NO_ACTIVE_COLOR, "no ModelVersion has been promoted yet")
    elif ready > 0:
        available = (True, cond.ACTIVE_READY,
                     f"{ready}/{obs.replicas} pods of {active.value} serve {d.active_model_version}")
    else:
        available = (False, cond.ACTIVE_NOT_READY, f"no ready pod of {active.value} ({d.active_model_version})")
    held = st.held_back
    desired = obs.desired.target
    blocked = held is not None and (desired is None or desired.name == held.model_version)
    if sit.progress is None and desired is None and obs.desired.reason:
        sit.progress = Reasoned(obs.desired.reason, obs.desired.message)
    progress = sit.progress or Reasoned(cond.ROLLOUT_COMPLETE, "")
    why_blocked = (Reasoned(held.reason, f"{held.model_version}: {held.message}") if blocked and held
                   else Reasoned(cond.NOT_BLOCKED, ""))
    d.conditions = [
        Condition(cond.AVAILABLE, *available),
        Condition(cond.PROGRESSING, sit.progress is not None, *progress),
        Condition(cond.PROMOTION_BLOCKED, blocked, *why_blocked),
    ]
    if sit.paused:
        d.phase, d.message = DeploymentPhase.PAUSED, sit.progress.message if sit.progress else ""
    elif blocked and held:
        d.phase = DeploymentPhase.DEGRADED
        d.message = (f"{held.model_version} held back ({held.reason}): {held.message}"
                     + (f"; serving {d.active_model_version}" if d.active_model_version else ""))
    elif sit.degraded or (active is not None and ready == 0):
        d.phase, d.message = DeploymentPhase.DEGRADED, sit.degraded.message if sit.degraded else available[2]
    elif sit.progress is not None:
        d.phase, d.message = DeploymentPhase.PROGRESSING, sit.progress.message
    elif ready < obs.replicas:
        d.phase, d.message = DeploymentPhase.PROGRESSING, available[2]
        d.wait(POLL_SECONDS)
    else:
        d.phase, d.message = DeploymentPhase.HEALTHY, available[2]


HISTORY_LIMIT = 20


def goal(decision: Decision) -> tuple[bool, bool, str]:
    """(ready, stalled, reason) for kstatus: Ready while the active color serves the desired version
    with every replica; Stalled while a version is held back (blocked, rolled back, gates not met) -
    only a new version or acgs.io/retry moves it on."""
    by_type = {c.type: c for c in decision.conditions}
    blocked = by_type.get(cond.PROMOTION_BLOCKED)
    if blocked is not None and blocked.status:
        return False, True, blocked.reason
    serving_desired = decision.desired_model_version in (None, decision.active_model_version)
    if decision.phase is DeploymentPhase.HEALTHY and serving_desired and decision.active_model_version:
        return True, False, cond.ROLLOUT_COMPLETE
    progressing = by_type.get(cond.PROGRESSING)
    available = by_type.get(cond.AVAILABLE)
    if progressing is not None and progressing.status:
        return False, False, progressing.reason
    return False, False, available.reason if available is not None else decision.phase.value


def status_fields(current: dict[str, Any], decision: Decision, generation: int | None, active_service: str,
                  preview_service: str) -> dict[str, Any]:
    """The Deployment's status after `decision` (the handler writes the fields that changed)."""
    conditions = [c for c in current.get("conditions") or []
                  if c.get("type") != cond.READY or c.get("reason") != cond.AWAITING_RECONCILER]
    for condition in decision.conditions:
        conditions = cond.set_condition(conditions, condition.type, condition.status, condition.reason,
                                        condition.message, generation)
    ready, stalled, reason = goal(decision)
    conditions = cond.kstatus(conditions, ready=ready, stalled=stalled, reason=reason, message=decision.message,
                              generation=generation)
    return {
        "phase": decision.phase.value,
        "message": decision.message[:32768],
        "observedGeneration": generation,
        "conditions": conditions,
        "activeColor": decision.active_color.value if decision.active_color else None,
        "activeModelVersion": decision.active_model_version,
        "previewColor": decision.preview_color.value if decision.preview_color else None,
        "previewModelVersion": decision.preview_model_version,
        "desiredModelVersion": decision.desired_model_version,
        "readyReplicas": decision.ready_replicas,
        "activeService": active_service,
        "previewService": preview_service,
        "history": ((current.get("history") or []) + decision.history)[-HISTORY_LIMIT:],
        # Cleared fields are sent as null: in a merge patch that deletes them.
        "rollout": decision.state.model_dump(by_alias=True, mode="json"),
    }
