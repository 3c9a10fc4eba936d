"""A flywheel run as a state machine: scenarios from trigger to decision, pure (no cluster)."""

from __future__ import annotations

from acgs_contract import flywheel as contract
from acgs_contract.constitution import CONSTITUTIONAL_HASH

from acgs_operator.api.flywheel import FlywheelPolicySpec, FlywheelPolicyStatus
from acgs_operator.decisions import flywheel_run as m
from acgs_operator.decisions.jobrun import FAILED, RUNNING, SUCCEEDED, Observation

NOW = "2026-01-01T00:00:00Z"
EVAL_DIGEST = "sha256:" + "ee" * 32
ART = m.ArtifactView("cai-1-0-0", "pvc://artifacts/cai/1", "sha256:" + "aa" * 32, "cai", "builtin:tiny-llama")
FT_ART = m.ArtifactView("cai-1-1-0", "pvc://artifacts/cai/2", "sha256:" + "bb" * 32, "cai", "builtin:tiny-llama")


def spec(**extra: object) -> FlywheelPolicySpec:
    return FlywheelPolicySpec.model_validate({
        "constitutionalHash": CONSTITUTIONAL_HASH, "deploymentRef": "srv", "maxParallel": 2, "autoPromote": True,
        "acceptance": {"minComplianceScore": 0.9, "minAccuracyRatio": 0.9, "maxCostRatio": 1.0},
        "candidates": [{"name": "base", "kind": "Base", "baseModel": "builtin:tiny-llama", "relativeCost": 0.5},
                       {"name": "icl", "kind": "InContext", "baseModel": "builtin:tiny-llama", "relativeCost": 0.5},
                       {"name": "ft", "baseModel": "builtin:tiny-llama", "relativeCost": 0.5}],
        **extra})


RUN = {"id": "run-abc", "phase": "Preparing", "trigger": "RunNow", "started": NOW, "records": 40,
       "snapshotDigest": "sha256:" + "11" * 32, "workspace": "fw-workspace"}


def prepared(phase: str = "Succeeded") -> Observation:
    result = contract.PrepareResult(phase=phase, reason="Prepared" if phase == "Succeeded" else "NotEnoughRecords",
                                    message="m", run_id="run-abc", records=40, eval_records=10, train_records=30,
                                    judged_records=35, live_compliance=0.9, budget_max_epsilon=2.0,
                                    budget_mean_epsilon=1.5, retired_total=3, eval_digest=EVAL_DIGEST)
    return Observation(SUCCEEDED if phase == "Succeeded" else FAILED, "r", "m", result=result.to_wire())


def evaluated(candidate: str, accuracy: float, compliance: float, latency: float, digest: str = EVAL_DIGEST,
              phase: str = "Succeeded") -> Observation:
    result = contract.EvalResult(phase=phase, reason="Evaluated", run_id="run-abc", candidate=candidate,
                                 accuracy=accuracy, compliance_score=compliance, latency_ms=latency,
                                 eval_records=10, eval_digest=digest)
    return Observation(SUCCEEDED if phase == "Succeeded" else FAILED, "r", "m", result=result.to_wire())


def states(step: m.RunStep) -> dict[str, str]:
    return {c["name"]: c["state"] for c in step.candidates}


def valid(step: m.RunStep) -> None:
    FlywheelPolicyStatus.model_validate({"currentRun": step.run, "candidates": step.candidates, **step.status})


def test_a_new_run_asks_for_its_prepare_job_once():
    step = m.advance("fw", RUN, [], spec(), m.RunObservation(), NOW)
    assert [s.step for s in step.starts] == [m.PREPARE] and step.run["prepareJob"] == "fw-run-abc-prepare"
    running = m.advance("fw", step.run, [], spec(), m.RunObservation(prepare=Observation(RUNNING, "r", "m")), NOW)
    assert not running.starts and running.run["phase"] == "Preparing"


def test_prepare_gone_before_read_fails_the_run_rather_than_charge_the_ledger_twice():
    step = m.advance("fw", {**RUN, "prepareJob": "fw-run-abc-prepare"}, [], spec(), m.RunObservation(), NOW)
    assert step.finished and step.run["phase"] == "Failed" and "gone" in step.run["message"]


def test_a_failed_prepare_fails_the_run_with_its_reason():
    step = m.advance("fw", {**RUN, "prepareJob": "p"}, [], spec(), m.RunObservation(prepare=prepared("Failed")), NOW)
    assert step.finished and step.run["reason"] == m.PREPARE_FAILED and "NotEnoughRecords" in step.run["message"]
    assert step.events[-1].reason == m.RUN_FAILED


def test_prepared_run_schedules_production_first_within_max_parallel():
    obs = m.RunObservation(prepare=prepared(), production=ART)
    step = m.advance("fw", {**RUN, "prepareJob": "p"}, [], spec(), obs, NOW)
    valid(step)
    assert step.run["phase"] == "Evaluating" and step.run["evalDigest"] == EVAL_DIGEST
    assert step.status["liveCompliance"] == 0.9 and step.status["budget"]["retiredRecords"] == 3
    assert states(step) == {"production": "Evaluating", "base": "Evaluating", "icl": "Pending", "ft": "Pending"}
    assert [(s.step, s.candidate) for s in step.starts] == [(m.EVAL, "production"), (m.EVAL, "base")]
    assert step.starts[0].artifact == ART and step.candidates[0]["modelVersion"] == "cai-1-0-0"
    assert step.candidates[1]["job"] == "fw-run-abc-base-eval"


def run_to_decision(spec_: FlywheelPolicySpec, ft_scores: tuple[float, float, float],
                    base_scores: tuple[float, float, float] = (0.5, 0.6, 50.0)) -> m.RunStep:
    """Drive a run through every state with the children reporting the given scores."""
    step = m.advance("fw", {**RUN, "prepareJob": "p"}, [], spec_, m.RunObservation(prepare=prepared(), production=ART),
                     NOW)
    obs = m.RunObservation(production=ART, evals={"production": evaluated("production", 0.8, 0.95, 100.0),
                                                  "base": evaluated("base", *base_scores)})
    step = m.advance("fw", step.run, step.candidates, spec_, obs, NOW)
    assert states(step) == {"production": "Evaluated", "base": "Evaluated", "icl": "Evaluating", "ft": "Training"}
    assert step.candidates[3]["trainingJob"] == "fw-run-abc-ft-ft"
    assert [s.step for s in step.starts] == [m.EVAL, m.TRAIN] and step.starts[1].artifact == ART
    obs = m.RunObservation(production=ART, evals={"icl": evaluated("icl", 0.6, 0.7, 60.0)},
                           trainings={"ft": m.TrainingView("Running", None)})
    step = m.advance("fw", step.run, step.candidates, spec_, obs, NOW)
    assert states(step)["ft"] == "Training" and not step.starts
    obs = m.RunObservation(production=ART, trainings={"ft": m.TrainingView("Succeeded", "cai-1-1-0")},
                           artifacts={"cai-1-1-0": FT_ART})
    step = m.advance("fw", step.run, step.candidates, spec_, obs, NOW)
    assert states(step)["ft"] == "Evaluating" and step.starts[0].artifact == FT_ART
    obs = m.RunObservation(production=ART, evals={"ft": evaluated("ft", *ft_scores)})
    step = m.advance("fw", step.run, step.candidates, spec_, obs, NOW)
    valid(step)
    return step


def test_a_fine_tune_that_meets_the_criteria_wins_and_is_promoted():
    step = run_to_decision(spec(), (0.85, 0.96, 50.0))
    assert step.finished and step.succeeded
    assert states(step) == {"production": "Evaluated", "base": "Rejected", "icl": "Rejected", "ft": "Winner"}
    assert step.promote == "cai-1-1-0" and step.run["promoted"] == "cai-1-1-0" and step.run["winner"] == "ft"
    assert step.status["recommendation"] == "ft/cai-1-1-0" and step.status["estimatedCostReduction"] == 0.75
    reasons = [e.reason for e in step.events]
    assert reasons.count("CandidateRejected") == 2 and "WinnerSelected" in reasons and "Promoted" in reasons


def test_without_auto_promote_the_winner_is_recommended_only():
    step = run_to_decision(spec(autoPromote=False), (0.85, 0.96, 50.0))
    assert step.promote is None and "acgs.io/promote=ft" in step.run["message"]


def test_a_base_winner_is_recommended_not_promoted():
    step = run_to_decision(spec(), (0.5, 0.5, 50.0), base_scores=(0.85, 0.96, 20.0))
    assert step.run["winner"] == "base" and step.promote is None and "no ModelVersion" in step.run["message"]


def test_no_candidate_meets_the_criteria_the_run_succeeds_without_a_winner():
    step = run_to_decision(spec(), (0.5, 0.5, 50.0))
    assert step.succeeded and step.run["winner"] is None and step.promote is None
    assert step.status["recommendation"] is None


def test_a_failed_training_is_recorded_and_the_others_go_on():
    s = spec()
    step = m.advance("fw", {**RUN, "prepareJob": "p"}, [], s, m.RunObservation(prepare=prepared(), production=ART),
                     NOW)
    cands = [dict(c, state="Evaluated", accuracy=0.8, complianceScore=0.95, latencyMs=100.0) if c["name"] != "ft"
             else dict(c, state="Training", trainingJob="fw-run-abc-ft-ft") for c in step.candidates]
    step = m.advance("fw", step.run, cands, s, m.RunObservation(
        production=ART, trainings={"ft": m.TrainingView("Failed", None, "PrivacyBudgetExhausted")}), NOW)
    assert step.finished and states(step)["ft"] == "Failed"
    assert "PrivacyBudgetExhausted" in step.candidates[3]["reasons"][0]
    assert step.succeeded  # base and icl were compared


def test_a_result_on_another_eval_set_is_not_compared():
    s = spec(candidates=[])
    step = m.advance("fw", {**RUN, "prepareJob": "p"}, [], s, m.RunObservation(prepare=prepared(), production=ART),
                     NOW)
    wrong = evaluated("production", 0.8, 0.95, 100.0, digest="sha256:" + "ff" * 32)
    step = m.advance("fw", step.run, step.candidates, s, m.RunObservation(production=ART, evals={"production": wrong}),
                     NOW)
    assert states(step)["production"] == "Failed" and m.EVAL_SET_MISMATCH in step.candidates[0]["reasons"][0]
    assert step.finished and step.run["phase"] == "Failed"


def test_no_production_model_fails_production_and_fine_tunes_but_not_base():
    s = spec()
    step = m.advance("fw", {**RUN, "prepareJob": "p"}, [], s.model_copy(update={"max_parallel": 10}),
                     m.RunObservation(prepare=prepared()), NOW)
    assert states(step) == {"production": "Failed", "base": "Evaluating", "icl": "Evaluating", "ft": "Failed"}
    assert m.NO_PRODUCTION_MODEL in step.candidates[0]["reasons"][0]


def test_an_eval_job_gone_is_applied_again():
    s = spec(candidates=[])
    step = m.advance("fw", {**RUN, "prepareJob": "p"}, [], s, m.RunObservation(prepare=prepared(), production=ART),
                     NOW)
    again = m.advance("fw", step.run, step.candidates, s, m.RunObservation(production=ART), NOW)
    assert [(x.step, x.candidate, x.artifact) for x in again.starts] == [(m.EVAL, "production", ART)]


def test_a_finished_run_is_left_alone():
    step = m.advance("fw", {**RUN, "phase": "Succeeded"}, [], spec(), m.RunObservation(), NOW)
    assert not step.starts and not step.finished


def test_candidate_names_are_unique_and_production_is_reserved():
    import pytest
    from pydantic import ValidationError
    base = {"constitutionalHash": CONSTITUTIONAL_HASH, "deploymentRef": "srv"}
    with pytest.raises(ValidationError, match=r"spec.candidates\[0\].name='production': reserved"):
        FlywheelPolicySpec.model_validate({**base, "candidates": [{"name": "production", "baseModel": "b"}]})
    with pytest.raises(ValidationError, match=r"spec.candidates\[1\].name='a': already used"):
        FlywheelPolicySpec.model_validate({**base, "candidates": [{"name": "a", "baseModel": "b"},
                                                                   {"name": "a", "baseModel": "b"}]})
