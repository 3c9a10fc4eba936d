"""`step(observation) -> Decision`: the three situations (steady, post-promotion, rolling out)."""

from __future__ import annotations

from acgs_contract.timefmt import format_time as ts

from .. import conditions as cond
from ..api.deployment import Color
from ..events import NORMAL
from .commands import apply_commands
from .gates import gate_failures
from .model import (
    POLL_SECONDS,
    WAIT_FOR_MODEL_VERSION_SECONDS,
    Checks,
    Decision,
    Observation,
    Reasoned,
    Situation,
    Target,
    camel_reason,
    epoch,
)
from .status import summarize
from .transitions import block, clear_attempt, rollback, switch


def step(obs: Observation) -> Decision:
    """Decide what to serve, plan both colors, and say what to check, post and write."""
    st = obs.state.model_copy(deep=True)
    sit = Situation()
    d = Decision(state=st, active_color=obs.active_color, active_model_version=obs.active_model_version)
    d.desired_model_version = obs.desired.target.name if obs.desired.target else None
    apply_commands(obs, d, sit)
    target = _target(obs, d)
    if d.active_color and (target is None or target.name == d.active_model_version):
        if not st.post_checks_done:
            _post_promotion(obs, d, sit)
        if d.needs is None and st.post_checks_done:
            _steady(obs, d, sit)
    elif target is None:
        for color, seen in obs.colors.items():
            d.plan(color, seen.model_version, 0)
    else:
        _rollout(obs, d, sit, target)
    summarize(obs, d, sit)
    return d


def _target(obs: Observation, d: Decision) -> Target | None:
    """What to serve: the desired version, unless it is held back (then the pinned one, or stay)."""
    st, desired = d.state, obs.desired.target
    if st.held_back and desired and desired.name != st.held_back.model_version:
        st.held_back, st.pinned_model_version = None, None  # a new version gets a fresh attempt
    if st.held_back:
        return obs.known.get(st.pinned_model_version) if st.pinned_model_version else None
    return desired


def _keep_or_scale_down_previous(obs: Observation, d: Decision, sit: Situation) -> None:
    st, active = d.state, d.active_color
    assert active is not None
    idle = active.other
    seen = obs.color(idle)
    due = epoch(st.scale_down_at)
    if due is not None and st.previous_color == idle.value and seen.model_version:
        if obs.now >= due:
            d.plan(idle, seen.model_version, 0)
            d.event(NORMAL, cond.SCALED_DOWN, f"{idle.value} ({seen.model_version}) scaled down after the switch")
            st.scale_down_at = None
        else:
            d.plan(idle, seen.model_version, obs.replicas)
            sit.progress = Reasoned(cond.SCALE_DOWN_PENDING,
                                    f"{idle.value} ({seen.model_version}) scales down at {st.scale_down_at}")
            d.wait(due - obs.now)
        return
    st.scale_down_at = None
    d.plan(idle, seen.model_version, 0)


def _steady(obs: Observation, d: Decision, sit: Situation) -> None:
    if d.state.target:  # the version being previewed is no longer wanted (or is held back)
        d.event(NORMAL, cond.PREVIEW_DROPPED, f"preview of {d.state.target} stopped: no longer the desired version")
        clear_attempt(d.state)
    assert d.active_color is not None
    d.plan(d.active_color, d.active_model_version, obs.replicas)
    _keep_or_scale_down_previous(obs, d, sit)


def _post_promotion(obs: Observation, d: Decision, sit: Situation) -> None:
    st, strategy = d.state, obs.strategy
    promoted = epoch(st.promoted_at) or obs.now
    assert d.active_color is not None
    d.plan(d.active_color, d.active_model_version, obs.replicas)
    if st.previous_color and st.previous_model_version:
        previous = Color(st.previous_color)
        d.plan(previous, obs.color(previous).model_version, obs.replicas)
    if strategy.post_promotion_checks:
        if obs.post_checks is None:
            d.needs = Checks.POST
            return
        if not obs.post_checks.ok:
            rollback(obs, d, sit, camel_reason(obs.post_checks.reason, cond.POST_PROMOTION_CHECK_FAILED),
                      obs.post_checks.message)
            return
        remaining = promoted + strategy.post_promotion_window_seconds - obs.now
        if remaining > 0:
            sit.progress = Reasoned(cond.POST_PROMOTION_CHECKS,
                                    f"checking {d.active_model_version} for {remaining:.0f}s more")
            d.wait(min(POLL_SECONDS, remaining))
            return
        d.event(NORMAL, cond.POST_PROMOTION_CHECKS_PASSED, f"{d.active_model_version} passed its post-promotion checks")
    st.post_checks_done = True
    st.scale_down_at = ts(max(promoted + obs.strategy.scale_down_delay_seconds, obs.now))


def _rollout(obs: Observation, d: Decision, sit: Situation, target: Target) -> None:
    st, strategy, now = d.state, obs.strategy, obs.now
    active = d.active_color
    first = active is None
    preview = Color.BLUE if active is None else active.other
    if active is not None:
        d.plan(active, d.active_model_version, obs.replicas)
    if target.invalid:
        block(obs, d, target.name, preview, *target.invalid)
        return
    if not target.usable:
        if active is not None:
            _keep_or_scale_down_previous(obs, d, sit)
        sit.progress = Reasoned(cond.MODEL_VERSION_NOT_READY,
                                f"waiting for ModelVersion {target.name} to be verified (status.phase Ready)")
        d.wait(WAIT_FOR_MODEL_VERSION_SECONDS)
        return
    failures = gate_failures(target.metrics, obs.gates)
    if failures:
        block(obs, d, target.name, preview, cond.GATES_NOT_MET, "; ".join(failures))
        return
    if st.target != target.name:
        clear_attempt(st)
        st.target, st.preview_since = target.name, ts(now)
        if st.previous_color == preview.value:
            st.scale_down_at = None  # the old color is reused for the preview
        d.event(NORMAL, cond.ROLLOUT_STARTED, f"starting {target.name} in {preview.value}")
    d.preview_color, d.preview_model_version = preview, target.name
    preview_replicas = obs.replicas if first else (strategy.preview_replica_count or obs.replicas)
    seen = obs.color(preview)
    ready = seen.ready if seen.model_version == target.name else 0
    approved = st.promote_approved == target.name
    checked_at = epoch(st.checks_passed_at)

    def promoting() -> bool:
        if checked_at is None:
            return False
        if first or approved or strategy.auto_promotion_enabled:
            return True
        seconds = strategy.auto_promotion_seconds
        return seconds is not None and now >= checked_at + seconds

    wanted = obs.replicas if promoting() else preview_replicas
    d.plan(preview, target.name, wanted)
    if seen.failure and seen.model_version == target.name:
        reason, message = seen.failure
        block(obs, d, target.name, preview, camel_reason(reason, cond.PREVIEW_FAILED),
               f"preview {preview.value} of {target.name} will never be ready: {message}")
        return
    started = epoch(st.preview_since) or now
    if ready < wanted and now - started > strategy.progress_deadline_seconds:
        block(obs, d, target.name, preview, cond.PREVIEW_NOT_READY,
               f"preview {preview.value} of {target.name}: {ready}/{wanted} pods ready after "
               f"progressDeadlineSeconds {strategy.progress_deadline_seconds}")
        return
    if checked_at is None:
        if ready < preview_replicas:
            sit.progress = Reasoned(cond.PREVIEW_STARTING,
                                    f"preview {preview.value} of {target.name}: {ready}/{preview_replicas} pods ready")
            d.wait(POLL_SECONDS)
            return
        if obs.pre_checks is None:
            d.needs = Checks.PRE
            return
        if not obs.pre_checks.ok:
            block(obs, d, target.name, preview, obs.pre_checks.reason, obs.pre_checks.message)
            return
        checked_at = now
        st.checks_passed_at = ts(now)
        d.event(NORMAL, cond.PREVIEW_CHECKS_PASSED,
                f"preview {preview.value} of {target.name} passed its pre-promotion checks")
        wanted = obs.replicas if promoting() else preview_replicas
        d.plan(preview, target.name, wanted)
    if not promoting():
        sit.paused = True
        seconds = strategy.auto_promotion_seconds
        hint = f"; promoted automatically at {ts(checked_at + seconds)}" if seconds is not None else ""
        sit.progress = Reasoned(cond.AWAITING_PROMOTION, f"preview {preview.value} of {target.name} passed its checks; "
                      f"annotate acgs.io/promote=true to promote it{hint}")
        if seconds is not None:
            d.wait(max(checked_at + seconds - now, 0.5))
        return
    if ready < obs.replicas:
        sit.progress = Reasoned(cond.SCALING_UP_PREVIEW,
                                f"preview {preview.value} of {target.name}: {ready}/{obs.replicas} pods ready")
        d.wait(POLL_SECONDS)
        return
    switch(obs, d, sit, target, preview)
