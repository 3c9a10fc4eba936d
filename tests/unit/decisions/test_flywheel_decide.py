"""Deciding a flywheel run (acceptance, cost, winner) and promotion requests: pure scenarios."""

from __future__ import annotations

import pytest

from acgs_operator.api.flywheel import Acceptance
from acgs_operator.decisions import flywheel as fw
from acgs_operator.decisions import flywheel_decide as fd

ACCEPT = Acceptance(min_compliance_score=0.9, min_accuracy_ratio=0.95, max_cost_ratio=1.0)


def evaluated(name: str, kind: str, accuracy: float, compliance: float, latency: float,
              relative_cost: float = 1.0, **extra: object) -> dict:
    return {"name": name, "kind": kind, "state": "Evaluated", "accuracy": accuracy, "complianceScore": compliance,
            "latencyMs": latency, "relativeCost": relative_cost, "reasons": [], **extra}


PROD = evaluated("production", "Production", 0.80, 0.95, 100.0, modelVersion="m-1-0-0")


def by_name(verdict: fd.Verdict) -> dict[str, dict]:
    return {c["name"]: c for c in verdict.candidates}


def test_cost_ratio_is_price_times_latency_ratio():
    assert fd.cost_ratio(0.5, 50.0, 100.0) == 0.25
    assert fd.cost_ratio(0.5, 300.0, 100.0) == 1.5  # cheaper per second but three times slower


def test_each_criterion_rejects_with_its_reason():
    candidates = [PROD,
                  evaluated("low-compliance", "Base", 0.9, 0.5, 50, 0.5),
                  evaluated("low-accuracy", "InContext", 0.7, 0.95, 50, 0.5),
                  evaluated("too-slow", "FineTune", 0.9, 0.95, 400, 0.5, modelVersion="m-1-1-0")]
    v = fd.decide(candidates, ACCEPT)
    c = by_name(v)
    assert v.winner is None and v.failure is None
    assert [s["state"] for s in (c["low-compliance"], c["low-accuracy"], c["too-slow"])] == ["Rejected"] * 3
    assert "minComplianceScore" in c["low-compliance"]["reasons"][0]
    assert "minAccuracyRatio 0.95 × production 0.8000 = 0.7600" in c["low-accuracy"]["reasons"][0]
    assert c["too-slow"]["costRatio"] == 2.0 and "maxCostRatio" in c["too-slow"]["reasons"][0]
    assert [e.reason for e in v.events].count(fd.CANDIDATE_REJECTED) == 3
    assert v.events[-1].reason == fd.NO_WINNER


def test_the_cheapest_accepted_wins_then_the_most_accurate():
    candidates = [PROD,
                  evaluated("ft", "FineTune", 0.85, 0.96, 50, 0.5, modelVersion="m-1-1-0"),  # cost 0.25
                  evaluated("ft-b", "FineTune", 0.90, 0.96, 50, 0.5, modelVersion="m-1-2-0"),  # cost 0.25, better
                  evaluated("base", "Base", 0.80, 0.96, 100, 0.9)]  # cost 0.9
    v = fd.decide(candidates, ACCEPT)
    c = by_name(v)
    assert v.winner is not None and v.winner["name"] == "ft-b"
    assert (c["ft-b"]["state"], c["ft"]["state"], c["base"]["state"]) == ("Winner", "Accepted", "Accepted")
    assert v.cost_reduction == 0.75
    assert c["production"]["state"] == "Evaluated"  # production is the yardstick, not a contender
    assert v.events[-1].reason == fd.WINNER_SELECTED and "75.0%" in v.events[-1].message


def test_a_failed_candidate_is_recorded_and_does_not_block_the_others():
    candidates = [PROD, {"name": "broken", "kind": "FineTune", "state": "Failed", "reasons": ["TrainingJob failed"]},
                  evaluated("ok", "Base", 0.85, 0.96, 80, 0.5)]
    v = fd.decide(candidates, ACCEPT)
    assert v.winner is not None and v.winner["name"] == "ok"
    assert by_name(v)["broken"]["state"] == "Failed"
    assert any(e.reason == fd.CANDIDATE_FAILED and "broken" in e.message for e in v.events)


@pytest.mark.parametrize("production, others, failure", [
    ({"name": "production", "kind": "Production", "state": "Failed", "reasons": ["NoProductionModel: x"]},
     [evaluated("ok", "Base", 0.9, 0.96, 10)], "production model could not be scored (NoProductionModel: x)"),
    (PROD, [{"name": "a", "kind": "Base", "state": "Failed", "reasons": ["boom"]}], "every candidate failed"),
])
def test_a_run_without_a_comparison_fails(production, others, failure):
    v = fd.decide([production, *others], ACCEPT)
    assert v.winner is None and failure in str(v.failure)


def test_only_an_accepted_fine_tune_with_a_model_version_is_promotable():
    assert fd.promotable({"name": "f", "kind": "FineTune", "state": "Winner", "modelVersion": "m"}) is None
    assert fd.promotable({"name": "f", "kind": "FineTune", "state": "Accepted", "modelVersion": "m"}) is None
    assert "acceptance criteria" in str(fd.promotable({"name": "f", "kind": "FineTune", "state": "Rejected",
                                                       "modelVersion": "m"}))
    assert "no ModelVersion" in str(fd.promotable({"name": "b", "kind": "Base", "state": "Winner"}))
    assert "no such candidate" in str(fd.promotable(None))


STATUS = {"candidates": [{"name": "production", "kind": "Production", "state": "Evaluated"},
                         {"name": "ft", "kind": "FineTune", "state": "Winner", "modelVersion": "m-1-1-0"},
                         {"name": "bad", "kind": "FineTune", "state": "Rejected", "modelVersion": "m-1-2-0"}],
          "lastRunResult": {"id": "run-1", "phase": "Succeeded", "winner": "ft"}}


def test_promote_annotation_promotes_the_winner_once():
    req = fd.promote_requested(STATUS, "ft")
    assert req is not None and req.model_version == "m-1-1-0"
    assert req.status["promoteHandled"] == "ft" and req.status["lastRunResult"]["promoted"] == "m-1-1-0"
    assert fd.promote_requested({**STATUS, "promoteHandled": "ft"}, "ft") is None  # acted on already
    assert fd.promote_requested({**STATUS, "currentRun": {"id": "run-2"}}, "ft") is None  # a run is deciding


def test_promote_annotation_refuses_a_rejected_candidate_and_says_why():
    req = fd.promote_requested(STATUS, "bad")
    assert req is not None and req.model_version is None and req.status == {"promoteHandled": "bad"}
    assert req.events[0].reason == fd.PROMOTE_REFUSED and "Rejected" in req.events[0].message


@pytest.mark.parametrize("status, phase", [
    ({}, "Collecting"),
    ({"currentRun": {"id": "r"}}, "Evaluating"),
    ({"lastRunResult": {"phase": "Failed"}}, "Failed"),
    ({"lastRunResult": {"phase": "Succeeded", "winner": "ft"}, "candidates": STATUS["candidates"]}, "Recommending"),
    ({"lastRunResult": {"phase": "Succeeded", "winner": "ft", "promoted": "m-1-1-0"},
      "candidates": STATUS["candidates"]}, "Idle"),
    ({"lastRunResult": {"phase": "Succeeded", "winner": None}}, "Idle"),
])
def test_policy_phase_follows_the_runs(status, phase):
    assert fw.policy_phase(status) == phase


def test_a_failed_last_run_makes_the_policy_not_ready_but_not_stalled():
    out = fw.standing({"lastRunResult": {"id": "run-1", "phase": "Failed", "message": "boom"}}, "Collected", "ok", 3)
    conditions = {c["type"]: (c["status"], c["reason"]) for c in out["conditions"]}
    assert out["phase"] == "Failed" and "run run-1 failed: boom" in out["message"]
    assert conditions["Ready"] == ("False", fw.RUN_FAILED) and conditions["Stalled"][0] == "False"
