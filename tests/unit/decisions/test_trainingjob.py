"""Scenarios of a TrainingJob's status decision: observed Job run in, status and event out."""

from __future__ import annotations

from typing import Any

from acgs_operator.decisions import jobrun
from acgs_operator.decisions import trainingjob as tj

DIGEST = "sha256:" + "a" * 64


def result(**fields: Any) -> dict[str, Any]:
    """A trainer's result as it writes it (the contract's TrainerResult, camelCase)."""
    return {"phase": "Succeeded", "reason": "Succeeded", "exitCode": 0, **fields}


def run(phase: jobrun.JobPhase, reason: str = "R", message: str = "m", result: dict[str, Any] | None = None,
        **times: Any) -> jobrun.Observation:
    return jobrun.Observation(phase, reason, message, result=result, **times)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


class TestDecide:
    def test_no_job_yet_is_pending_without_an_event(self) -> None:
        d = tj.decide(run(jobrun.PENDING, "Pending"), None, {}, 1)
        assert d.phase == "Pending" and d.event is None and "jobName" not in d.status
        assert conditions(d.status) == {"Created": ("False", "Pending"), "Ready": ("False", "Pending"),
                                        "Reconciling": ("True", "Pending"), "Stalled": ("False", "Working")}

    def test_running_is_announced_once(self) -> None:
        first = tj.decide(run(jobrun.RUNNING, "PodRunning"), "x-train", {}, 1)
        assert first.event is not None and (first.event.type, first.event.reason) == ("Normal", "PodRunning")
        again = tj.decide(run(jobrun.RUNNING, "PodRunning"), "x-train", first.status, 1)
        assert again.event is None
        assert conditions(again.status)["Running"] == ("True", "PodRunning")

    def test_success_asks_for_the_model_version_then_records_it(self) -> None:
        observed = run(jobrun.SUCCEEDED, "Succeeded", "done",
                       result(digest=DIGEST, steps=40, totalSteps=40, epsilon=0.123456))
        ask = tj.decide(observed, "x-train", {"phase": "Running"}, 1)
        assert ask.needs_model_version and ask.event is None
        assert ask.result is not None and ask.result.digest == DIGEST
        done = tj.decide(observed, "x-train", {"phase": "Running"}, 1, tj.CreatedModelVersion("cai-0-1-0", DIGEST))
        assert not done.needs_model_version and done.status["modelVersion"] == "cai-0-1-0"
        assert done.status["artifactDigest"] == DIGEST and done.status["message"].startswith("ModelVersion cai-0-1-0")
        # ε shown rounded up, never below what was spent
        assert done.status["progress"] == {"percent": 100.0, "step": 40, "totalSteps": 40, "epsilon": 0.1235}
        assert done.event is not None and done.event.type == "Normal"

    def test_success_without_a_digest_fails_with_result_missing(self) -> None:
        d = tj.decide(run(jobrun.SUCCEEDED, "Succeeded", "done", result(steps=3)), "x-train", {"phase": "Running"}, 1)
        assert d.phase == "Failed" and not d.needs_model_version
        assert conditions(d.status)["Failed"] == ("True", "ResultMissing")
        assert d.event is not None and (d.event.type, d.event.reason) == ("Warning", "ResultMissing")

    def test_a_recorded_model_version_is_not_created_again(self) -> None:
        old = {"phase": "Succeeded", "modelVersion": "cai-0-1-0"}
        d = tj.decide(run(jobrun.SUCCEEDED, "Succeeded", "done", result(digest=DIGEST)), "x-train", old, 1)
        assert not d.needs_model_version and d.event is None and "modelVersion" not in d.status

    def test_failure_keeps_the_reported_progress_and_turns_running_off(self) -> None:
        running = tj.decide(run(jobrun.RUNNING, "PodRunning"), "x-train", {}, 1).status
        old = {**running, "progress": {"step": 5, "loss": 2.5}}
        d = tj.decide(run(jobrun.FAILED, "PrivacyBudgetExhausted", "exit code 4: spent",
                          result(phase="Failed", reason="PrivacyBudgetExhausted", exitCode=4, epsilon=8.0)),
                      "x-train", old, 1)
        assert d.status["progress"] == {"step": 5, "loss": 2.5, "epsilon": 8.0}
        assert conditions(d.status)["Running"] == ("False", "Failed")
        assert conditions(d.status)["Failed"] == ("True", "PrivacyBudgetExhausted")
        assert d.event is not None and d.event.type == "Warning"
