"""The moves between situations: switch the active color, hold a version back, block a preview,
roll back after a failed post-promotion check."""

from __future__ import annotations

from acgs_contract.timefmt import format_time as ts

from .. import conditions as cond
from ..api.deployment import Color, HeldBack, RolloutState
from ..events import NORMAL, WARNING
from .model import Decision, Observation, Reasoned, Situation, Target


def clear_attempt(st: RolloutState) -> None:
    st.target = st.preview_since = st.checks_passed_at = None
    st.promote_approved = st.promote_approved if st.pinned_model_version == st.promote_approved else None


def switch(obs: Observation, d: Decision, sit: Situation, target: Target, preview: Color) -> None:
    st = d.state
    old_color, old_version = d.active_color, d.active_model_version
    d.active_color, d.active_model_version = preview, target.name
    d.preview_color = d.preview_model_version = None
    st.previous_color = old_color
    st.previous_model_version = old_version
    st.promoted_at, st.post_checks_done, st.scale_down_at = ts(obs.now), False, None
    clear_attempt(st)
    st.promote_approved = None
    d.plan(preview, target.name, obs.replicas)
    if old_color is not None:
        d.plan(old_color, old_version, obs.replicas)
    d.record(obs.now, cond.PROMOTED, target.name, preview)
    d.event(NORMAL, cond.PROMOTED, f"active Service switched to {preview.value} ({target.name})"
            + (f"; was {old_color.value} ({old_version})" if old_color else ""))
    sit.progress = Reasoned(cond.POST_PROMOTION_CHECKS, f"switched to {target.name}")
    d.wait(1.0)


def hold(obs: Observation, d: Decision, version: str, reason: str, message: str, *,
         action: str, color: Color | None = None) -> None:
    d.state.held_back = HeldBack(model_version=version, reason=reason, message=message[:4096], time=ts(obs.now),
                                 generation=obs.generation)
    d.record(obs.now, action, version, color, reason)
    d.event(WARNING, reason, f"{version}: {message}"[:1000])


def block(obs: Observation, d: Decision, version: str, preview: Color, reason: str, message: str) -> None:
    """Never promote `version` (until retry or a new version); the live color keeps serving."""
    hold(obs, d, version, reason, message, action=cond.BLOCKED, color=preview)
    clear_attempt(d.state)
    d.preview_color = d.preview_model_version = None
    d.plan(preview, obs.color(preview).model_version, 0)


def rollback(obs: Observation, d: Decision, sit: Situation, reason: str, message: str) -> None:
    st = d.state
    failed_color, failed_version = d.active_color, d.active_model_version
    back_color = Color(st.previous_color) if st.previous_color else None
    back_version = st.previous_model_version
    seen = obs.color(back_color)
    st.post_checks_done, st.promoted_at, st.scale_down_at = True, None, None
    # Like Argo Rollouts' abort: back to the stable color whenever it still runs the previous version
    # (it is kept at full scale through the window), ready this instant or not - the new version has
    # just failed, the old one was serving until the switch.
    if back_color and back_version and seen.model_version == back_version:
        d.active_color, d.active_model_version = back_color, back_version
        st.previous_color = st.previous_model_version = None
        d.plan(back_color, back_version, obs.replicas)
        if failed_color:
            d.plan(failed_color, failed_version, 0)
        hold(obs, d, failed_version or "", reason, f"rolled back to {back_version}: {message}",
              action=cond.ROLLED_BACK, color=failed_color)
        return
    hold(obs, d, failed_version or "", reason, f"no earlier version to roll back to: {message}",
          action=cond.BLOCKED, color=failed_color)
    sit.degraded = Reasoned(reason, message)
