"""The blue-green state machine (acgs_operator.rollout): pure, no cluster. Each test is one moment of
a rollout a user would recognise from Argo Rollouts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from acgs_operator import rollout as r
from acgs_operator.api.deployment import BlueGreenStrategy, Color, HeldBack, PromotionGates, RolloutState

NOW = 1_800_000_000.0
GOOD = {"complianceScore": 0.97, "accuracy": 0.9}
V1 = r.Target("cai-1", "sha256:1", GOOD)
V2 = r.Target("cai-2", "sha256:2", GOOD)


def obs(desired: r.Target | None = V2, active: str | None = "blue", active_mv: str | None = "cai-1",
        colors: dict[str, r.ColorObs] | None = None, state: RolloutState | None = None, replicas: int = 2,
        strategy: dict[str, Any] | None = None, gates: dict[str, Any] | None = None, **extra: Any,
        ) -> r.Observation:
    if colors is None:
        colors = {"blue": r.ColorObs("cai-1", replicas)} if active == "blue" else {}
    return r.Observation(
        now=NOW, replicas=replicas,
        strategy=BlueGreenStrategy.model_validate({"previewReplicaCount": 1, **(strategy or {})}),
        gates=PromotionGates.model_validate(gates or {}), state=state or RolloutState(),
        active_color=Color(active) if active else None, active_model_version=active_mv,
        desired=r.Desired(desired, "NoModelVersionInStage", "none yet") if desired is None else r.Desired(desired),
        known={V1.name: V1, V2.name: V2}, colors=colors, **extra)


def conditions(d: r.Decision) -> dict[str, tuple[bool, str]]:
    return {t: (s, reason) for t, s, reason, _ in d.conditions}


def previewing(since: float = NOW - 5, checked: float | None = None, **state: Any) -> RolloutState:
    return RolloutState(target="cai-2", preview_since=r.ts(since),
                        checks_passed_at=r.ts(checked) if checked else None, **state)


class TestFirstVersion:
    def test_brings_up_blue_at_full_scale_and_waits(self) -> None:
        d = r.step(obs(desired=V1, active=None, active_mv=None, colors={}))
        assert d.plans == {"blue": r.ColorPlan("cai-1", 2)}
        assert d.active_color is None and d.phase == "Progressing" and d.requeue
        assert conditions(d)["Available"] == (False, "NoActiveColor")

    def test_goes_live_once_checked_without_pausing(self) -> None:
        o = obs(desired=V1, active=None, active_mv=None, colors={"blue": r.ColorObs("cai-1", 2)},
                strategy={"autoPromotionEnabled": False}, state=RolloutState(target="cai-1", preview_since=r.ts(NOW)))
        assert r.step(o).needs == r.PRE_CHECKS
        d = r.step(replace(o, pre_checks=r.CheckResult(True)))
        assert (d.active_color, d.active_model_version) == (Color.BLUE, "cai-1")
        assert d.history[-1]["action"] == "Promoted" and conditions(d)["Available"][0]

    def test_nothing_to_serve_yet_is_progressing(self) -> None:
        d = r.step(obs(desired=None, active=None, active_mv=None, colors={}))
        assert d.phase == "Progressing" and conditions(d)["Progressing"] == (True, "NoModelVersionInStage")


class TestPreview:
    def test_new_version_starts_in_the_other_color_at_preview_count(self) -> None:
        d = r.step(obs())
        assert d.plans["green"] == r.ColorPlan("cai-2", 1) and d.plans["blue"] == r.ColorPlan("cai-1", 2)
        assert d.state.target == "cai-2" and d.preview_color == Color.GREEN
        assert conditions(d)["Progressing"] == (True, "PreviewStarting") and d.phase == "Progressing"

    def test_checks_run_once_the_preview_is_ready(self) -> None:
        colors = {"blue": r.ColorObs("cai-1", 2), "green": r.ColorObs("cai-2", 1)}
        assert r.step(obs(colors=colors, state=previewing())).needs == r.PRE_CHECKS

    @pytest.mark.parametrize("metrics,gates,fragment", [
        ({"complianceScore": 0.2}, {}, "complianceScore 0.2000 < spec.promotion.minComplianceScore 0.95"),
        ({}, {}, "complianceScore is not reported"),
        ({"complianceScore": 0.99, "accuracy": 0.5}, {"minAccuracy": 0.8},
         "accuracy 0.5000 < spec.promotion.minAccuracy"),
    ])
    def test_metrics_below_gates_block_before_any_pod_starts(self, metrics: dict[str, Any],
                                                             gates: dict[str, Any], fragment: str) -> None:
        d = r.step(obs(desired=r.Target("cai-2", "sha256:2", metrics), gates=gates))
        assert "green" not in d.plans or d.plans["green"].replicas == 0
        assert d.plans["blue"] == r.ColorPlan("cai-1", 2)  # the live color keeps serving
        assert conditions(d)["PromotionBlocked"] == (True, "GatesNotMet")
        assert conditions(d)["Available"][0] and d.phase == "Degraded"
        assert fragment in d.state.held_back.message and d.history[-1]["action"] == "Blocked"  # type: ignore[union-attr]

    def test_a_preview_that_can_never_be_ready_blocks_with_the_servers_reason(self) -> None:
        colors = {"blue": r.ColorObs("cai-1", 2),
                  "green": r.ColorObs("cai-2", 0, ("FileDigestMismatch", "pod g: adapter/x: sha256 differs"))}
        d = r.step(obs(colors=colors, state=previewing()))
        assert conditions(d)["PromotionBlocked"] == (True, "FileDigestMismatch")
        assert d.plans["green"].replicas == 0 and d.active_color == Color.BLUE
        assert "sha256 differs" in d.message

    def test_progress_deadline_blocks(self) -> None:
        d = r.step(obs(colors={"blue": r.ColorObs("cai-1", 2), "green": r.ColorObs("cai-2", 0)},
                       state=previewing(since=NOW - 700)))
        assert conditions(d)["PromotionBlocked"] == (True, "PreviewNotReady")

    @pytest.mark.parametrize("reason", ["DigestMismatch", "SmokeTestFailed"])
    def test_failed_pre_checks_block(self, reason: str) -> None:
        colors = {"blue": r.ColorObs("cai-1", 2), "green": r.ColorObs("cai-2", 1)}
        d = r.step(obs(colors=colors, state=previewing(), pre_checks=r.CheckResult(False, reason, "bad")))
        assert conditions(d)["PromotionBlocked"] == (True, reason) and d.active_model_version == "cai-1"

    def test_unverified_model_version_waits(self) -> None:
        d = r.step(obs(desired=replace(V2, usable=False)))
        assert conditions(d)["Progressing"] == (True, "ModelVersionNotReady") and "green" not in d.plans or \
            d.plans["green"].replicas == 0


class TestPromotion:
    ready_both = {"blue": r.ColorObs("cai-1", 2), "green": r.ColorObs("cai-2", 2)}

    def test_checked_preview_scales_up_before_the_switch(self) -> None:
        colors = {"blue": r.ColorObs("cai-1", 2), "green": r.ColorObs("cai-2", 1)}
        d = r.step(obs(colors=colors, state=previewing(), pre_checks=r.CheckResult(True)))
        assert d.plans["green"] == r.ColorPlan("cai-2", 2) and d.active_color == Color.BLUE
        assert conditions(d)["Progressing"] == (True, "ScalingUpPreview")

    def test_switch(self) -> None:
        d = r.step(obs(colors=self.ready_both, state=previewing(checked=NOW - 1)))
        assert (d.active_color, d.active_model_version) == (Color.GREEN, "cai-2")
        assert d.state.previous_color == "blue" and d.state.previous_model_version == "cai-1"
        assert d.plans["blue"] == r.ColorPlan("cai-1", 2)  # kept for rollback
        assert not d.state.post_checks_done and d.history[-1]["action"] == "Promoted"

    def test_manual_promotion_pauses_until_promote(self) -> None:
        o = obs(colors=self.ready_both, state=previewing(checked=NOW - 1), strategy={"autoPromotionEnabled": False})
        d = r.step(o)
        assert d.phase == "Paused" and conditions(d)["Progressing"] == (True, "AwaitingPromotion")
        assert d.plans["green"].replicas == 1 and d.requeue is None
        d = r.step(replace(o, commands=frozenset({r.Command.PROMOTE})))
        assert d.active_color == Color.GREEN

    @pytest.mark.parametrize("checked_ago,switched", [(5, False), (11, True)])
    def test_auto_promotion_seconds(self, checked_ago: float, switched: bool) -> None:
        d = r.step(obs(colors=self.ready_both, state=previewing(checked=NOW - checked_ago),
                       strategy={"autoPromotionEnabled": False, "autoPromotionSeconds": 10}))
        assert (d.active_color == Color.GREEN) == switched
        if not switched:
            assert d.phase == "Paused" and d.requeue == pytest.approx(5)


def promoted(ago: float, **state: Any) -> RolloutState:
    return RolloutState(promoted_at=r.ts(NOW - ago), post_checks_done=False, previous_color="blue",
                        previous_model_version="cai-1", **state)


class TestAfterTheSwitch:
    both = {"blue": r.ColorObs("cai-1", 2), "green": r.ColorObs("cai-2", 2)}

    def test_post_checks_keep_running_for_the_window(self) -> None:
        o = obs(active="green", active_mv="cai-2", colors=self.both, state=promoted(5))
        assert r.step(o).needs == r.POST_CHECKS
        d = r.step(replace(o, post_checks=r.CheckResult(True)))
        assert conditions(d)["Progressing"] == (True, "PostPromotionChecks") and d.plans["blue"].replicas == 2

    def test_window_passed_schedules_the_scale_down(self) -> None:
        d = r.step(obs(active="green", active_mv="cai-2", colors=self.both, state=promoted(20),
                       post_checks=r.CheckResult(True), strategy={"scaleDownDelaySeconds": 30}))
        assert d.state.post_checks_done and d.state.scale_down_at == r.ts(NOW + 10)
        assert d.plans["blue"].replicas == 2 and d.requeue == pytest.approx(10)

    def test_old_color_scales_down_when_due(self) -> None:
        state = RolloutState(previous_color="blue", previous_model_version="cai-1", scale_down_at=r.ts(NOW - 1))
        d = r.step(obs(active="green", active_mv="cai-2", colors=self.both, state=state))
        assert d.plans["blue"] == r.ColorPlan("cai-1", 0) and d.phase == "Healthy"
        assert conditions(d)["Progressing"] == (False, "RolloutComplete")

    @pytest.mark.parametrize("old_ready", [2, 0])
    def test_failed_post_check_rolls_back_and_holds_the_version(self, old_ready: int) -> None:
        colors = {"blue": r.ColorObs("cai-1", old_ready), "green": r.ColorObs("cai-2", 2)}
        d = r.step(obs(active="green", active_mv="cai-2", colors=colors, state=promoted(3),
                       post_checks=r.CheckResult(False, "PostPromotionCheckFailed", "1/2 pods ready")))
        assert (d.active_color, d.active_model_version) == (Color.BLUE, "cai-1")
        assert d.plans["green"].replicas == 0 and d.plans["blue"].replicas == 2
        assert d.phase == "Degraded" and conditions(d)["PromotionBlocked"] == (True, "PostPromotionCheckFailed")
        assert d.history[-1]["action"] == "RolledBack" and "rolled back to cai-1" in d.message
        assert conditions(d)["Available"][0] == bool(old_ready)
        # the spec still asks for cai-2, but it is not tried again by itself
        again = r.step(obs(colors={"blue": r.ColorObs("cai-1", 2), "green": r.ColorObs("cai-2", 0)}, state=d.state))
        assert again.active_model_version == "cai-1" and again.state.target is None


class TestCommands:
    def test_first_version_failing_after_the_switch_has_nothing_to_roll_back_to(self) -> None:
        state = RolloutState(promoted_at=r.ts(NOW - 2), post_checks_done=False)
        d = r.step(obs(desired=V1, active="blue", active_mv="cai-1", colors={"blue": r.ColorObs("cai-1", 0)},
                       state=state, post_checks=r.CheckResult(False, "PostPromotionCheckFailed", "0/2 ready")))
        assert d.active_model_version == "cai-1" and d.phase == "Degraded"
        assert "no earlier version" in d.message

    def test_abort_stops_the_preview(self) -> None:
        colors = {"blue": r.ColorObs("cai-1", 2), "green": r.ColorObs("cai-2", 0)}
        d = r.step(obs(colors=colors, state=previewing(), commands=frozenset({r.Command.ABORT})))
        assert d.state.held_back.reason == "Aborted" and d.plans["green"].replicas == 0  # type: ignore[union-attr]
        assert d.history[-1]["action"] == "Aborted" and d.phase == "Degraded"

    def test_retry_clears_a_held_version(self) -> None:
        held = RolloutState(held_back=HeldBack(model_version="cai-2", reason="GatesNotMet", time=r.ts(NOW)))
        assert r.step(obs(state=held)).state.target is None
        d = r.step(obs(state=held, commands=frozenset({r.Command.RETRY})))
        assert d.state.held_back is None and d.state.target == "cai-2"

    def test_a_spec_change_judges_a_held_version_anew(self) -> None:
        weak = r.Target("cai-2", "sha256:2", {"complianceScore": 0.2})
        blocked = r.step(obs(desired=weak, generation=1))
        assert blocked.state.held_back.generation == 1  # type: ignore[union-attr]
        same_spec = r.step(obs(desired=weak, gates={"minComplianceScore": 0.1}, state=blocked.state, generation=1))
        assert same_spec.state.held_back is not None and same_spec.state.target is None
        new_spec = r.step(obs(desired=weak, gates={"minComplianceScore": 0.1}, state=blocked.state, generation=2))
        assert new_spec.state.held_back is None and new_spec.state.target == "cai-2"
        assert any(e.reason == "SpecChanged" for e in new_spec.events)

    def test_a_new_version_replaces_a_held_one(self) -> None:
        held = RolloutState(held_back=HeldBack(model_version="cai-3", reason="GatesNotMet", time=r.ts(NOW)))
        d = r.step(obs(state=held))
        assert d.state.held_back is None and d.state.target == "cai-2"

    def test_undo_returns_to_the_previous_version_without_pausing(self) -> None:
        state = RolloutState(previous_color="blue", previous_model_version="cai-1")
        colors = {"green": r.ColorObs("cai-2", 2), "blue": r.ColorObs("cai-1", 0)}
        d = r.step(obs(active="green", active_mv="cai-2", colors=colors, state=state,
                       strategy={"autoPromotionEnabled": False}, commands=frozenset({r.Command.UNDO})))
        assert d.state.held_back.reason == "Undone" and d.state.pinned_model_version == "cai-1"  # type: ignore[union-attr]
        assert d.plans["blue"] == r.ColorPlan("cai-1", 1) and d.state.promote_approved == "cai-1"
        colors = {"green": r.ColorObs("cai-2", 2), "blue": r.ColorObs("cai-1", 2)}
        later = r.step(obs(active="green", active_mv="cai-2", colors=colors, strategy={"autoPromotionEnabled": False},
                           state=d.state.model_copy(update={"checks_passed_at": r.ts(NOW)})))
        assert later.active_model_version == "cai-1"

    @pytest.mark.parametrize("command,event", [(r.Command.PROMOTE, "NothingToPromote"),
                                               (r.Command.UNDO, "NothingToUndo"),
                                               (r.Command.ABORT, "NothingToAbort")])
    def test_commands_with_nothing_to_act_on_say_so(self, command: str, event: str) -> None:
        d = r.step(obs(desired=V1, commands=frozenset({command})))
        assert event in [e.reason for e in d.events] and d.phase == "Healthy"
