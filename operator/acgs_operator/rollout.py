"""The blue-green rollout of a Deployment (acgs.io), modelled on Argo Rollouts' blueGreen strategy.

Pure: the handler observes (the desired ModelVersion, the colors' pods, check results), calls
`step`, and carries out the Decision (apply children, write status, post events). `step` asks for
checks through `Decision.needs`; the handler runs them and calls `step` again with the results.

One rollout: the inactive color runs the target at previewReplicaCount → it becomes ready →
pre-promotion checks → promotion (auto, after autoPromotionSeconds, or acgs.io/promote) → the
preview scales to `replicas` → the active Service switches → post-promotion checks for a window
(failure: switch back) → the old color scales down after scaleDownDelaySeconds. A version that
fails is "held back": the live color keeps serving until a new version, or acgs.io/retry.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from . import conditions as cond
from .api.deployment import BlueGreenStrategy, Color, HeldBack, PromotionGates, RolloutState
from .events import NORMAL, WARNING, Event

PROMOTE, ABORT, UNDO, RETRY = "promote", "abort", "undo", "retry"
COMMANDS = (PROMOTE, ABORT, UNDO, RETRY)
PRE_CHECKS, POST_CHECKS = "pre", "post"
POLL_SECONDS = 2.0
WAIT_FOR_MODEL_VERSION_SECONDS = 5.0


def ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def other(color: Color | str) -> Color:
    return Color.GREEN if str(getattr(color, "value", color)) == Color.BLUE.value else Color.BLUE


def camel_reason(text: str, fallback: str) -> str:
    """A server's failure reason as a condition reason (CamelCase letters and digits only)."""
    cleaned = re.sub(r"[^A-Za-z0-9]", "", text or "")
    return cleaned[:1].upper() + cleaned[1:] if cleaned else fallback


@dataclass(frozen=True)
class Target:
    """A ModelVersion the operator could serve."""

    name: str
    digest: str
    metrics: dict[str, Any] = field(default_factory=dict)
    usable: bool = True  # verified (or verification not required)
    invalid: tuple[str, str] | None = None  # (reason, message): can never be served


@dataclass(frozen=True)
class Desired:
    target: Target | None
    reason: str = ""  # why there is none (yet)
    message: str = ""


@dataclass(frozen=True)
class ColorObs:
    model_version: str | None = None  # what the color's apps/v1 Deployment runs
    ready: int = 0  # ready, not terminating pods of that model version
    failure: tuple[str, str] | None = None  # (reason, message) a pod reports: it will never be ready


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str = ""
    message: str = ""


@dataclass
class Observation:
    now: float
    replicas: int
    strategy: BlueGreenStrategy
    gates: PromotionGates
    state: RolloutState
    active_color: Color | None
    active_model_version: str | None
    desired: Desired
    known: dict[str, Target] = field(default_factory=dict)  # pinned/previous versions by name
    colors: dict[str, ColorObs] = field(default_factory=dict)
    commands: frozenset[str] = frozenset()
    pre_checks: CheckResult | None = None
    post_checks: CheckResult | None = None
    generation: int | None = None  # metadata.generation of the Deployment

    def color(self, color: Color | str | None) -> ColorObs:
        return self.colors.get(str(getattr(color, "value", color)), ColorObs()) if color else ColorObs()


@dataclass
class ColorPlan:
    model_version: str
    replicas: int


@dataclass
class Decision:
    state: RolloutState
    active_color: Color | None
    active_model_version: str | None
    desired_model_version: str | None = None
    preview_color: Color | None = None
    preview_model_version: str | None = None
    plans: dict[str, ColorPlan] = field(default_factory=dict)
    phase: str = "Progressing"
    message: str = ""
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    requeue: float | None = None
    needs: str | None = None
    ready_replicas: int = 0
    # set by the paths below, read by _summarize
    progress: tuple[str, str] | None = None
    paused: bool = False
    degraded: tuple[str, str] | None = None

    def wait(self, seconds: float) -> None:
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    def plan(self, color: Color | str, model_version: str | None, replicas: int) -> None:
        if model_version:
            self.plans[str(getattr(color, "value", color))] = ColorPlan(model_version, replicas)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def record(self, now: float, action: str, model_version: str, color: Color | str | None,
               reason: str | None = None) -> None:
        entry: dict[str, Any] = {"time": ts(now), "action": action, "modelVersion": model_version}
        if color:
            entry["color"] = str(getattr(color, "value", color))
        if reason:
            entry["reason"] = reason
        self.history.append(entry)


def gate_failures(metrics: dict[str, Any], gates: PromotionGates) -> list[str]:
    """What keeps a ModelVersion's recorded metrics from passing spec.promotion."""
    failures = []
    for key, minimum, spec_name in (("complianceScore", gates.min_compliance_score, "minComplianceScore"),
                                    ("accuracy", gates.min_accuracy, "minAccuracy")):
        if minimum <= 0:
            continue
        value = metrics.get(key)
        if value is None:
            failures.append(f"metrics.{key} is not reported (spec.promotion.{spec_name} is {minimum})")
        elif value < minimum:
            failures.append(f"metrics.{key} {value:.4f} < spec.promotion.{spec_name} {minimum}")
    return failures


def step(obs: Observation) -> Decision:
    st = obs.state.model_copy(deep=True)
    d = Decision(state=st, active_color=obs.active_color, active_model_version=obs.active_model_version)
    d.desired_model_version = obs.desired.target.name if obs.desired.target else None
    _commands(obs, d)
    target = _target(obs, d)
    if d.active_color and (target is None or target.name == d.active_model_version):
        if not st.post_checks_done:
            _post_promotion(obs, d)
        if d.needs is None and st.post_checks_done:
            _steady(obs, d)
    elif target is None:
        for color, seen in obs.colors.items():
            d.plan(color, seen.model_version, 0)
    else:
        _rollout(obs, d, target)
    _summarize(obs, d)
    return d


# --- commands (annotations a person sets instead of editing the Git-owned spec) ------------------


def _commands(obs: Observation, d: Decision) -> None:
    st = d.state
    held = st.held_back
    if held and held.generation is not None and obs.generation is not None and obs.generation > held.generation:
        # The spec changed (e.g. the gates, in Git) since the version was held back: judge it anew.
        d.event(NORMAL, "SpecChanged", f"retrying {held.model_version} under the new spec (was held back: {held.reason})")
        st.held_back, st.pinned_model_version = None, None
    if RETRY in obs.commands:
        if st.held_back:
            d.event(NORMAL, "Retry", f"retrying {st.held_back.model_version} (was held back: {st.held_back.reason})")
        st.held_back, st.pinned_model_version = None, None
    if ABORT in obs.commands:
        if st.target:
            _hold(obs, d, st.target, cond.ABORTED, "aborted by acgs.io/abort", action="Aborted")
            _clear_attempt(st)
        elif not st.post_checks_done:
            _rollback(obs, d, cond.ABORTED, "aborted by acgs.io/abort during post-promotion checks")
        else:
            d.event(NORMAL, "NothingToAbort", "acgs.io/abort: no rollout in progress")
    if UNDO in obs.commands:
        previous, active = st.previous_model_version, d.active_model_version
        if not previous or not active or previous == active or previous not in obs.known:
            d.event(NORMAL, "NothingToUndo", "acgs.io/undo: no earlier ModelVersion to return to")
        elif st.held_back and st.held_back.model_version == previous:
            d.event(WARNING, "NothingToUndo", f"acgs.io/undo: {previous} is held back "
                    f"({st.held_back.reason}); use acgs.io/retry")
        else:
            _clear_attempt(st)
            _hold(obs, d, active, cond.UNDONE, f"undone by acgs.io/undo; serving {previous} instead",
                  action="Undone")
            st.pinned_model_version = previous
            st.promote_approved = previous
    if PROMOTE in obs.commands:
        if st.target:
            st.promote_approved = st.target
            d.event(NORMAL, "PromotionApproved", f"acgs.io/promote: {st.target} will be promoted once its checks pass")
        else:
            d.event(NORMAL, "NothingToPromote", "acgs.io/promote: no preview waiting"
                    + (f" ({st.held_back.model_version} is held back: use acgs.io/retry)" if st.held_back else ""))


def _target(obs: Observation, d: Decision) -> Target | None:
    """What to serve: the desired version, unless it is held back (then the pinned one, or stay)."""
    st, desired = d.state, obs.desired.target
    if st.held_back and desired and desired.name != st.held_back.model_version:
        st.held_back, st.pinned_model_version = None, None  # a new version gets a fresh attempt
    if st.held_back:
        return obs.known.get(st.pinned_model_version) if st.pinned_model_version else None
    return desired


# --- the three situations ------------------------------------------------------------------------


def _keep_or_scale_down_previous(obs: Observation, d: Decision) -> None:
    st, active = d.state, d.active_color
    assert active is not None
    idle = other(active)
    seen = obs.color(idle)
    due = epoch(st.scale_down_at)
    if due is not None and st.previous_color == idle.value and seen.model_version:
        if obs.now >= due:
            d.plan(idle, seen.model_version, 0)
            d.event(NORMAL, "ScaledDown", f"{idle.value} ({seen.model_version}) scaled down after the switch")
            st.scale_down_at = None
        else:
            d.plan(idle, seen.model_version, obs.replicas)
            d.progress = (cond.SCALE_DOWN_PENDING, f"{idle.value} ({seen.model_version}) scales down at {st.scale_down_at}")
            d.wait(due - obs.now)
        return
    st.scale_down_at = None
    d.plan(idle, seen.model_version, 0)


def _steady(obs: Observation, d: Decision) -> None:
    if d.state.target:  # the version being previewed is no longer wanted (or is held back)
        d.event(NORMAL, "PreviewDropped", f"preview of {d.state.target} stopped: no longer the desired version")
        _clear_attempt(d.state)
    d.plan(d.active_color, d.active_model_version, obs.replicas)  # type: ignore[arg-type]
    _keep_or_scale_down_previous(obs, d)


def _post_promotion(obs: Observation, d: Decision) -> None:
    st, strategy = d.state, obs.strategy
    promoted = epoch(st.promoted_at) or obs.now
    d.plan(d.active_color, d.active_model_version, obs.replicas)  # type: ignore[arg-type]
    if st.previous_color and st.previous_model_version:
        d.plan(st.previous_color, obs.color(st.previous_color).model_version, obs.replicas)
    if strategy.post_promotion_checks:
        if obs.post_checks is None:
            d.needs = POST_CHECKS
            return
        if not obs.post_checks.ok:
            _rollback(obs, d, camel_reason(obs.post_checks.reason, cond.POST_PROMOTION_CHECK_FAILED),
                      obs.post_checks.message)
            return
        remaining = promoted + strategy.post_promotion_window_seconds - obs.now
        if remaining > 0:
            d.progress = (cond.POST_PROMOTION_CHECKS, f"checking {d.active_model_version} for {remaining:.0f}s more")
            d.wait(min(POLL_SECONDS, remaining))
            return
        d.event(NORMAL, "PostPromotionChecksPassed", f"{d.active_model_version} passed its post-promotion checks")
    st.post_checks_done = True
    st.scale_down_at = ts(max(promoted + obs.strategy.scale_down_delay_seconds, obs.now))


def _rollout(obs: Observation, d: Decision, target: Target) -> None:
    st, strategy, now = d.state, obs.strategy, obs.now
    active = d.active_color
    first = active is None
    preview = Color.BLUE if active is None else other(active)
    if active is not None:
        d.plan(active, d.active_model_version, obs.replicas)
    if target.invalid:
        _block(obs, d, target.name, preview, *target.invalid)
        return
    if not target.usable:
        if active is not None:
            _keep_or_scale_down_previous(obs, d)
        d.progress = (cond.MODEL_VERSION_NOT_READY, f"waiting for ModelVersion {target.name} to be verified (status.phase Ready)")
        d.wait(WAIT_FOR_MODEL_VERSION_SECONDS)
        return
    failures = gate_failures(target.metrics, obs.gates)
    if failures:
        _block(obs, d, target.name, preview, cond.GATES_NOT_MET, "; ".join(failures))
        return
    if st.target != target.name:
        _clear_attempt(st)
        st.target, st.preview_since = target.name, ts(now)
        if st.previous_color == preview.value:
            st.scale_down_at = None  # the old color is reused for the preview
        d.event(NORMAL, "RolloutStarted", f"starting {target.name} in {preview.value}")
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
        _block(obs, d, target.name, preview, camel_reason(reason, cond.PREVIEW_FAILED),
               f"preview {preview.value} of {target.name} will never be ready: {message}")
        return
    started = epoch(st.preview_since) or now
    if ready < wanted and now - started > strategy.progress_deadline_seconds:
        _block(obs, d, target.name, preview, cond.PREVIEW_NOT_READY,
               f"preview {preview.value} of {target.name}: {ready}/{wanted} pods ready after "
               f"progressDeadlineSeconds {strategy.progress_deadline_seconds}")
        return
    if checked_at is None:
        if ready < preview_replicas:
            d.progress = (cond.PREVIEW_STARTING, f"preview {preview.value} of {target.name}: {ready}/{preview_replicas} pods ready")
            d.wait(POLL_SECONDS)
            return
        if obs.pre_checks is None:
            d.needs = PRE_CHECKS
            return
        if not obs.pre_checks.ok:
            _block(obs, d, target.name, preview, obs.pre_checks.reason, obs.pre_checks.message)
            return
        checked_at = now
        st.checks_passed_at = ts(now)
        d.event(NORMAL, "PreviewChecksPassed", f"preview {preview.value} of {target.name} passed its pre-promotion checks")
        wanted = obs.replicas if promoting() else preview_replicas
        d.plan(preview, target.name, wanted)
    if not promoting():
        d.paused = True
        seconds = strategy.auto_promotion_seconds
        hint = f"; promoted automatically at {ts(checked_at + seconds)}" if seconds is not None else ""
        d.progress = (cond.AWAITING_PROMOTION, f"preview {preview.value} of {target.name} passed its checks; "
                      f"annotate acgs.io/promote=true to promote it{hint}")
        if seconds is not None:
            d.wait(max(checked_at + seconds - now, 0.5))
        return
    if ready < obs.replicas:
        d.progress = (cond.SCALING_UP_PREVIEW, f"preview {preview.value} of {target.name}: {ready}/{obs.replicas} pods ready")
        d.wait(POLL_SECONDS)
        return
    _switch(obs, d, target, preview)


# --- transitions -------------------------------------------------------------------------------


def _clear_attempt(st: RolloutState) -> None:
    st.target = st.preview_since = st.checks_passed_at = None
    st.promote_approved = st.promote_approved if st.pinned_model_version == st.promote_approved else None


def _switch(obs: Observation, d: Decision, target: Target, preview: Color) -> None:
    st = d.state
    old_color, old_version = d.active_color, d.active_model_version
    d.active_color, d.active_model_version = preview, target.name
    d.preview_color = d.preview_model_version = None
    st.previous_color = old_color.value if old_color else None
    st.previous_model_version = old_version
    st.promoted_at, st.post_checks_done, st.scale_down_at = ts(obs.now), False, None
    _clear_attempt(st)
    st.promote_approved = None
    d.plan(preview, target.name, obs.replicas)
    if old_color is not None:
        d.plan(old_color, old_version, obs.replicas)
    d.record(obs.now, cond.PROMOTED, target.name, preview)
    d.event(NORMAL, cond.PROMOTED, f"active Service switched to {preview.value} ({target.name})"
            + (f"; was {old_color.value} ({old_version})" if old_color else ""))
    d.progress = (cond.POST_PROMOTION_CHECKS, f"switched to {target.name}")
    d.wait(1.0)


def _hold(obs: Observation, d: Decision, version: str, reason: str, message: str, *,
          action: str, color: Color | str | None = None) -> None:
    d.state.held_back = HeldBack(model_version=version, reason=reason, message=message[:4096], time=ts(obs.now),
                                 generation=obs.generation)
    d.record(obs.now, action, version, color, reason)
    d.event(WARNING, reason, f"{version}: {message}"[:1000])


def _block(obs: Observation, d: Decision, version: str, preview: Color, reason: str, message: str) -> None:
    """Never promote `version` (until retry or a new version); the live color keeps serving."""
    _hold(obs, d, version, reason, message, action="Blocked", color=preview)
    _clear_attempt(d.state)
    d.preview_color = d.preview_model_version = None
    d.plan(preview, obs.color(preview).model_version, 0)


def _rollback(obs: Observation, d: Decision, reason: str, message: str) -> None:
    st = d.state
    failed_color, failed_version = d.active_color, d.active_model_version
    back_color, back_version = st.previous_color, st.previous_model_version
    seen = obs.color(back_color)
    st.post_checks_done, st.promoted_at, st.scale_down_at = True, None, None
    # Like Argo Rollouts' abort: back to the stable color whenever it still runs the previous version
    # (it is kept at full scale through the window), ready this instant or not - the new version has
    # just failed, the old one was serving until the switch.
    if back_color and back_version and seen.model_version == back_version:
        d.active_color, d.active_model_version = Color(back_color), back_version
        st.previous_color = st.previous_model_version = None
        d.plan(back_color, back_version, obs.replicas)
        if failed_color:
            d.plan(failed_color, failed_version, 0)
        _hold(obs, d, failed_version or "", reason, f"rolled back to {back_version}: {message}",
              action=cond.ROLLED_BACK, color=failed_color)
        return
    _hold(obs, d, failed_version or "", reason, f"no earlier version to roll back to: {message}",
          action="Blocked", color=failed_color)
    d.degraded = (reason, message)


# --- status ------------------------------------------------------------------------------------


def _summarize(obs: Observation, d: Decision) -> None:
    st, active = d.state, d.active_color
    seen = obs.color(active)
    ready = seen.ready if active and seen.model_version == d.active_model_version else 0
    d.ready_replicas = ready
    if active is None:
        available = (False, cond.NO_ACTIVE_COLOR, "no ModelVersion has been promoted yet")
    elif ready > 0:
        available = (True, cond.ACTIVE_READY, f"{ready}/{obs.replicas} pods of {active.value} serve {d.active_model_version}")
    else:
        available = (False, cond.ACTIVE_NOT_READY, f"no ready pod of {active.value} ({d.active_model_version})")
    held = st.held_back
    desired = obs.desired.target
    blocked = held is not None and (desired is None or desired.name == held.model_version)
    if d.progress is None and desired is None and obs.desired.reason:
        d.progress = (obs.desired.reason, obs.desired.message)
    d.conditions = [
        (cond.AVAILABLE, available[0], available[1], available[2]),
        (cond.PROGRESSING, d.progress is not None, *(d.progress or (cond.ROLLOUT_COMPLETE, ""))),
        (cond.PROMOTION_BLOCKED, blocked, *((held.reason, f"{held.model_version}: {held.message}")
                                           if blocked and held else (cond.NOT_BLOCKED, ""))),
    ]
    if d.paused:
        d.phase, d.message = "Paused", d.progress[1] if d.progress else ""
    elif blocked and held:
        d.phase = "Degraded"
        d.message = (f"{held.model_version} held back ({held.reason}): {held.message}"
                     + (f"; serving {d.active_model_version}" if d.active_model_version else ""))
    elif d.degraded or (active is not None and ready == 0):
        d.phase, d.message = "Degraded", d.degraded[1] if d.degraded else available[2]
    elif d.progress is not None:
        d.phase, d.message = "Progressing", d.progress[1]
    elif ready < obs.replicas:
        d.phase, d.message = "Progressing", available[2]
        d.wait(POLL_SECONDS)
    else:
        d.phase, d.message = "Healthy", available[2]
