"""Scenarios of a ModelVersion's verification decision."""

from __future__ import annotations

from typing import Any

from acgs_operator.api.modelversion import Metrics
from acgs_operator.decisions import jobrun
from acgs_operator.decisions import modelversion as mv

DIGEST = "sha256:" + "b" * 64
NOW = "2026-01-01T00:00:00Z"
FIGURES = {"accuracy": 0.9, "complianceScore": 0.95}
VERIFIED = {"phase": "Succeeded", "reason": "Verified", "digest": DIGEST, "fileCount": 3, "metrics": FIGURES,
            "epsilon": 1.5, "delta": 1e-5}
DECLARED = Metrics.model_validate({**FIGURES, "epsilon": 1.5, "delta": 1e-5})


def run(phase: jobrun.JobPhase, result: dict[str, Any] | None = None, exit_code: int | None = None,
        reason: str = "R") -> jobrun.Observation:
    return jobrun.Observation(phase, reason, "job message", result=result, exit_code=exit_code,
                              completion_time="2026-01-01T00:01:00Z" if phase is jobrun.SUCCEEDED else None)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


class TestDecide:
    def test_a_verified_digest_makes_it_ready_with_the_verified_figures(self) -> None:
        d = mv.decide(run(jobrun.SUCCEEDED, VERIFIED), DIGEST, DECLARED, {"phase": "Pending"}, 1, NOW)
        assert d.phase == "Ready" and d.status["verifiedDigest"] == DIGEST
        assert d.status["verifiedAt"] == "2026-01-01T00:01:00Z"
        assert d.status["verifiedMetrics"]["complianceScore"] == 0.95
        assert conditions(d.status) == {"Verified": ("True", "DigestVerified"), "Ready": ("True", "DigestVerified"),
                                        "Reconciling": ("False", "GoalReached"), "Stalled": ("False", "GoalReached")}
        assert d.event is not None and d.event.type == "Normal"

    def test_declared_figures_the_artifact_does_not_record_make_it_invalid(self) -> None:
        better = Metrics.model_validate({**FIGURES, "complianceScore": 0.99, "epsilon": 1.5, "delta": 1e-5})
        d = mv.decide(run(jobrun.SUCCEEDED, VERIFIED), DIGEST, better, {"phase": "Pending"}, 1, NOW)
        assert d.phase == "Invalid" and conditions(d.status)["Ready"] == ("False", "MetricsMismatch")
        assert conditions(d.status)["Stalled"] == ("True", "MetricsMismatch")
        assert conditions(d.status)["Reconciling"][0] == "False"
        assert "spec.metrics.complianceScore is 0.99" in d.status["message"]

    def test_a_different_digest_is_not_verified(self) -> None:
        d = mv.decide(run(jobrun.SUCCEEDED, {**VERIFIED, "digest": "sha256:" + "c" * 64}), DIGEST, DECLARED, {}, 1,
                      NOW)
        assert d.phase == "Pending" and conditions(d.status)["Verified"] == ("False", "ResultMissing")
        assert "verifiedDigest" not in d.status and d.event is None

    def test_an_artifact_error_makes_it_invalid_naming_the_file(self) -> None:
        result = {"phase": "Failed", "reason": "FileDigestMismatch", "message": "adapter/w.bin changed"}
        d = mv.decide(run(jobrun.FAILED, result, exit_code=5), DIGEST, DECLARED, {"phase": "Pending"}, 1, NOW)
        assert d.phase == "Invalid" and d.status["message"] == "FileDigestMismatch: adapter/w.bin changed"
        assert conditions(d.status)["Ready"] == ("False", "ArtifactError")
        assert d.event is not None and (d.event.type, d.event.reason) == ("Warning", "ArtifactError")

    def test_other_failures_keep_the_job_reason(self) -> None:
        d = mv.decide(run(jobrun.FAILED, None, reason="DeadlineExceeded"), DIGEST, DECLARED, {}, 1, NOW)
        assert d.phase == "Invalid" and conditions(d.status)["Verified"] == ("False", "DeadlineExceeded")

    def test_in_flight_is_pending_unknown_without_an_event(self) -> None:
        d = mv.decide(run(jobrun.RUNNING), DIGEST, DECLARED, {}, 1, NOW)
        assert d.phase == "Pending" and conditions(d.status)["Verified"] == ("Unknown", "Verifying")
        assert d.event is None
