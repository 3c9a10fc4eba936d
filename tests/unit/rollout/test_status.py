"""The Deployment status written from a rollout decision: pure, no cluster."""

from __future__ import annotations

from acgs_operator import rollout as r
from acgs_operator.api.deployment import BlueGreenStrategy, Color, PromotionGates, RolloutState

V1 = r.Target("cai-1", "sha256:1", {"complianceScore": 0.97, "accuracy": 0.9})


def healthy() -> r.Decision:
    return r.step(r.Observation(
        now=1_800_000_000.0, replicas=1, strategy=BlueGreenStrategy(), gates=PromotionGates(),
        state=RolloutState(post_checks_done=True), active_color=Color.BLUE, active_model_version="cai-1",
        desired=r.Desired(V1), known={"cai-1": V1}, colors={"blue": r.ColorObs("cai-1", 1)}))


def test_status_replaces_the_initial_condition_and_names_the_services() -> None:
    initial = {"conditions": [{"type": "Ready", "status": "False", "reason": "AwaitingReconciler", "message": "",
                               "lastTransitionTime": "t0"}]}
    status = r.status_fields(initial, healthy(), 3, "cai.ns.svc:80", "cai-preview.ns.svc:80")
    assert status["phase"] == "Healthy" and status["activeColor"] == "blue" and status["observedGeneration"] == 3
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Available": "True", "Progressing": "False", "PromotionBlocked": "False",
        "Ready": "True", "Reconciling": "False", "Stalled": "False"}
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert (status["activeService"], status["previewService"]) == ("cai.ns.svc:80", "cai-preview.ns.svc:80")


def test_an_unchanged_condition_keeps_its_transition_time_and_history_is_capped() -> None:
    first = r.status_fields({}, healthy(), 1, "a", "b")
    stamped = [{**c, "lastTransitionTime": "earlier"} for c in first["conditions"]]
    history = [{"time": "t", "action": "Promoted", "modelVersion": f"v{i}"} for i in range(30)]
    again = r.status_fields({**first, "conditions": stamped, "history": history}, healthy(), 1, "a", "b")
    assert {c["lastTransitionTime"] for c in again["conditions"]} == {"earlier"}
    assert len(again["history"]) == r.status.HISTORY_LIMIT and again["history"][-1]["modelVersion"] == "v29"
