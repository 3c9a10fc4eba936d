"""kstatus conventions (sigs.k8s.io/cli-utils/pkg/kstatus) for every kind: Ready is the goal,
Reconciling and Stalled are abnormal-true, and observedGeneration follows the spec the operator read."""

from __future__ import annotations

import pytest

from acgs_operator import conditions as cond
from acgs_operator import rollout as r
from acgs_operator.api.deployment import BlueGreenStrategy, Color, HeldBack, PromotionGates, RolloutState
from acgs_operator.handlers.lifecycle import initial_status

V1 = r.Target("cai-1", "sha256:1", {"complianceScore": 0.97, "accuracy": 0.9})
V2 = r.Target("cai-2", "sha256:2", {"complianceScore": 0.97, "accuracy": 0.9})


def states(conditions: list[dict]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in conditions if c["type"] in ("Ready", "Reconciling", "Stalled")}


@pytest.mark.parametrize("ready, stalled, expected", [
    (True, False, {"Ready": "True", "Reconciling": "False", "Stalled": "False"}),
    (False, False, {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
    (False, True, {"Ready": "False", "Reconciling": "False", "Stalled": "True"}),
])
def test_exactly_one_outcome_is_true(ready: bool, stalled: bool, expected: dict[str, str]) -> None:
    conditions = cond.kstatus([], ready=ready, stalled=stalled, reason="Why", message="m", generation=4)
    assert states(conditions) == expected
    assert {c["observedGeneration"] for c in conditions} == {4}


def test_observe_generation_moves_every_condition_and_the_status() -> None:
    conditions = cond.kstatus([], ready=True, stalled=False, reason="DigestVerified", message="", generation=1)
    observed = cond.observe_generation({"conditions": conditions, "observedGeneration": 1}, 2)
    assert observed["observedGeneration"] == 2
    assert {c["observedGeneration"] for c in observed["conditions"]} == {2}
    assert states(observed["conditions"]) == states(conditions)  # looking changes no outcome


def test_a_flywheel_policy_is_ready_while_collecting_and_other_kinds_reconcile() -> None:
    flywheel = initial_status("FlywheelPolicy", 1)
    assert flywheel["phase"] == "Collecting" and states(flywheel["conditions"])["Ready"] == "True"
    assert states(flywheel["conditions"])["Reconciling"] == "False"
    waiting = initial_status("TrainingJob", 1)
    assert states(waiting["conditions"]) == {"Ready": "False", "Reconciling": "True", "Stalled": "False"}


def decide(state: RolloutState, desired: r.Target, colors: dict) -> r.Decision:
    return r.step(r.Observation(
        now=1_800_000_000.0, replicas=1, strategy=BlueGreenStrategy(), gates=PromotionGates(), state=state,
        active_color=Color.BLUE, active_model_version="cai-1", desired=r.Desired(desired),
        known={"cai-1": V1, "cai-2": V2}, colors=colors))


def test_a_deployment_is_ready_only_when_it_serves_the_desired_version() -> None:
    done = decide(RolloutState(post_checks_done=True), V1, {"blue": r.ColorObs("cai-1", 1)})
    assert states(r.status_fields({}, done, 2, "a", "b")["conditions"])["Ready"] == "True"
    rolling = decide(RolloutState(post_checks_done=True), V2, {"blue": r.ColorObs("cai-1", 1)})
    assert states(r.status_fields({}, rolling, 2, "a", "b")["conditions"]) == {
        "Ready": "False", "Reconciling": "True", "Stalled": "False"}


def test_a_held_back_version_stalls_the_deployment() -> None:
    held = HeldBack(model_version="cai-2", reason="PostPromotionCheckFailed", message="rolled back to cai-1",
                    time="2027-01-15T08:00:00Z", generation=1)
    d = decide(RolloutState(post_checks_done=True, held_back=held), V2, {"blue": r.ColorObs("cai-1", 1)})
    conditions = r.status_fields({}, d, 1, "a", "b")["conditions"]
    assert states(conditions) == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    assert cond.get_condition(conditions, "Stalled")["reason"] == "PostPromotionCheckFailed"
