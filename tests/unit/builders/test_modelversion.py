"""Semver policy, the ModelVersion record, its verification Job, and reading Job outcomes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from acgs_contract import exitcodes
from acgs_contract.constitution import default_text
from acgs_contract.result import FAILED, SUCCEEDED, TrainerResult, VerifyResult, parse_verify_result

from acgs_operator import semver
from acgs_operator.api.modelversion import Metrics, ModelVersionSpec
from acgs_operator.api.trainingjob import TrainingJobSpec
from acgs_operator.builders import modelversion as mvb
from acgs_contract.constitution import CONSTITUTIONAL_HASH
from acgs_operator.builders.common import Owner
from acgs_operator.decisions import jobrun as jobstatus

HASH = CONSTITUTIONAL_HASH
DIGEST = "sha256:" + "ab" * 32


class TestSemver:
    @pytest.mark.parametrize("parent,policy,expected", [
        (None, "minor", "0.1.0"), (None, "major", "1.0.0"), (None, "patch", "0.0.1"),
        ("1.2.3", "major", "2.0.0"), ("1.2.3", "minor", "1.3.0"), ("1.2.3", "patch", "1.2.4"),
        ("1.2.3-rc.1+build.5", "patch", "1.2.4"),
    ])
    def test_bump(self, parent: str | None, policy: str, expected: str) -> None:
        assert semver.bump(parent, policy) == expected

    def test_candidates_continue_with_the_same_part(self) -> None:
        assert semver.candidates("1.0.0", "minor", 3) == ["1.1.0", "1.2.0", "1.3.0"]

    def test_rejects_non_semver(self) -> None:
        with pytest.raises(ValueError, match="semantic version"):
            semver.bump("v1", "minor")


class TestBuildModelVersion:
    RESULT = TrainerResult(phase=SUCCEEDED, reason="Succeeded", exit_code=0, digest=DIGEST,
                           data_digest="sha256:" + "cd" * 32, epsilon=3.2, delta=1e-5,
                           metrics={"accuracy": 0.5, "complianceScore": 0.75, "evalLoss": 1.25,
                                    "parseRate": 1.0},
                           base_metrics={"accuracy": 0.25, "complianceScore": 0.6})

    def test_record_from_result(self) -> None:
        spec = TrainingJobSpec.model_validate({"constitutionalHash": HASH, "modelName": "cai",
                                               "data": {"generate": {"type": "constitutional_ai"}}})
        mv = mvb.build_model_version(spec, "tj", "ns", "0.1.0", None, "pvc://a/b/artifact", self.RESULT,
                                     {"nodeSelector": {"x": "y"}})
        assert mv["metadata"]["name"] == "cai-0-1-0"
        parsed = ModelVersionSpec.model_validate(mv["spec"])
        assert parsed.stage == "candidate" and parsed.artifact.digest == DIGEST
        assert parsed.metrics.model_dump(by_alias=True) == {"accuracy": 0.5, "complianceScore": 0.75,
                                                           "evalLoss": 1.25, "epsilon": 3.2, "delta": 1e-5,
                                                           "baseComplianceScore": 0.6, "baseAccuracy": 0.25}
        assert parsed.lineage.training_job == "tj" and parsed.lineage.data_digest == self.RESULT.data_digest
        scheduling = mv["metadata"]["annotations"][mvb.ANNOTATION_VERIFY_SCHEDULING]
        assert json.loads(scheduling) == {"nodeSelector": {"x": "y"}}

    def test_no_metric_is_invented(self) -> None:
        spec = TrainingJobSpec.model_validate({"constitutionalHash": HASH, "modelName": "cai",
                                               "data": {"generate": {"type": "constitutional_ai"}}})
        bare = TrainerResult(phase=SUCCEEDED, reason="Succeeded", exit_code=0, digest=DIGEST)
        mv = mvb.build_model_version(spec, "tj", "ns", "0.1.0", None, "pvc://a/b", bare, {})
        assert mv["spec"]["metrics"] == {}


class TestBuildVerifyJob:
    @pytest.mark.parametrize("uri,expected", [
        ("pvc://artifacts/trainingjobs/x/artifact", ("artifacts", "trainingjobs/x/artifact")),
        ("pvc://artifacts/../etc", None), ("s3://bucket/x", None), ("file:///x", None),
    ])
    def test_artifact_location(self, uri: str, expected: Any) -> None:
        assert mvb.artifact_location(uri) == expected

    def test_job_mounts_the_claim_read_only(self) -> None:
        spec = ModelVersionSpec.model_validate({
            "constitutionalHash": HASH, "modelName": "cai", "version": "0.1.0", "baseModel": "b",
            "artifact": {"uri": "pvc://artifacts/tj/artifact", "digest": DIGEST}})
        owner = Owner(kind="ModelVersion", name="cai-0-1-0", namespace="ns", uid="uid-mv")
        job = mvb.build_verify_job(owner, spec, "img", {"tolerations": [{"operator": "Exists"}]})
        pod = job["spec"]["template"]["spec"]
        assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "artifacts", "readOnly": True}
        assert pod["containers"][0]["volumeMounts"][0] == {  # only this artifact's directory, read-only
            "name": "artifact", "mountPath": "/artifact-volume", "subPath": "tj/artifact", "readOnly": True}
        assert pod["containers"][0]["command"] == [
            "acgs-train", "verify", "--artifact", "/artifact-volume", "--digest", DIGEST,
            "--constitutional-hash", HASH, "--termination-log", "/dev/termination-log"]
        assert pod["tolerations"] == [{"operator": "Exists"}]
        fail_now = job["spec"]["podFailurePolicy"]["rules"][0]
        assert fail_now["action"] == "FailJob" and fail_now["onExitCodes"]["values"] == [2, 5]

    def test_verify_command_checks_a_real_artifact(self, tmp_path: Path) -> None:
        from acgs_trainer.artifact import write_artifact

        def populate(d: Path) -> None:
            (d / "adapter").mkdir()
            (d / "adapter" / "w.bin").write_bytes(b"weights")
            (d / "constitution.yaml").write_text(default_text())

        manifest = write_artifact(tmp_path / "artifact", populate, {
            "constitutional_hash": HASH,
            "metrics": {"accuracy": 0.75, "complianceScore": 0.875, "evalLoss": 1.5, "parseRate": 1.0},
            "privacy": {"enabled": True, "epsilonSpent": 2.345678, "targetDelta": 1e-5},
            "baseMetrics": {"complianceScore": 0.5, "accuracy": 0.25, "parseRate": 1.0}})
        log = tmp_path / "termination-log"

        def run(digest: str) -> tuple[int, dict[str, Any]]:
            command = mvb.verify_command(str(tmp_path / "artifact"), digest, HASH)
            assert command[:2] == ["acgs-train", "verify"] and command[-2] == "--termination-log"
            # The Job's command as it is, run by this interpreter and writing to a file here.
            proc = subprocess.run([sys.executable, "-m", "acgs_trainer.cli", *command[1:-1], str(log)],
                                  capture_output=True, text=True)
            return proc.returncode, json.loads(log.read_text())

        code, ok = run(manifest.digest)
        assert code == 0 and (ok["phase"], ok["digest"]) == (SUCCEEDED, manifest.digest)
        # the figures the operator gates on come from the verified manifest
        assert ok["metrics"] == {"accuracy": 0.75, "complianceScore": 0.875, "evalLoss": 1.5}
        assert (ok["epsilon"], ok["delta"]) == (2.345678, 1e-5)
        assert ok["baseMetrics"] == {"complianceScore": 0.5, "accuracy": 0.25}
        # every figure a ModelVersion records for a run is read back from the verified artifact
        figures = mvb.verified_metrics(parse_verify_result(ok))
        assert all(getattr(figures, name) is not None for name in Metrics.model_fields), figures
        # the record a successful run makes (from the trainer's result) agrees with what verify read
        declared = mvb.build_model_version(
            TrainingJobSpec.model_validate({"constitutionalHash": HASH, "modelName": "cai",
                                            "data": {"generate": {"type": "constitutional_ai"}}}),
            "tj", "ns", "0.1.0", None, "pvc://a/b", TrainerResult(
                phase=SUCCEEDED, reason="Succeeded", exit_code=0, digest=manifest.digest,
                metrics={"accuracy": 0.75, "complianceScore": 0.875, "evalLoss": 1.5},
                base_metrics={"accuracy": 0.25, "complianceScore": 0.5}, epsilon=2.345678, delta=1e-5), {})
        verified = mvb.verified_metrics(VerifyResult.model_validate(ok))
        assert mvb.metric_mismatches(ModelVersionSpec.model_validate(declared["spec"]).metrics, verified) == []
        (tmp_path / "artifact" / "adapter" / "w.bin").write_bytes(b"tampered")
        code, bad = run(manifest.digest)
        assert code == exitcodes.ARTIFACT_ERROR and bad["phase"] == FAILED
        assert "adapter/w.bin" in bad["message"] and bad["file"].endswith("adapter/w.bin")


def _job(conditions: list[dict[str, Any]], suspend: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "spec": {"suspend": suspend, "backoffLimit": 2},
            "status": {"conditions": conditions, "startTime": "t0"}}


def _pod(name: str, phase: str, code: int | None = None, message: str = "", created: str = "t1") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if code is not None:
        status["containerStatuses"] = [{"name": "trainer", "state": {"terminated": {"exitCode": code,
                                                                                  "message": message}}}]
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


class TestObserve:
    @pytest.mark.parametrize("code,reason", [(3, "InvalidData"), (4, "PrivacyBudgetExhausted"), (2, "InvalidConfig")])
    def test_pod_failure_policy_reason_from_exit_code(self, code: int, reason: str) -> None:
        message = json.dumps({"message": "bad things", "epsilon": 0.5})
        failed = {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "x"}
        obs = jobstatus.observe(_job([failed]), [_pod("p", "Failed", code, message)], "trainer")
        assert (obs.phase, obs.reason, obs.exit_code) == ("Failed", reason, code)
        assert obs.result == {"message": "bad things", "epsilon": 0.5} and "bad things" in obs.message

    @pytest.mark.parametrize("job_reason,reason", [("DeadlineExceeded", "DeadlineExceeded"),
                                                   ("BackoffLimitExceeded", "BackoffLimitExceeded")])
    def test_job_reasons(self, job_reason: str, reason: str) -> None:
        failed = {"type": "Failed", "status": "True", "reason": job_reason, "message": "m"}
        obs = jobstatus.observe(_job([failed]), [_pod("p", "Failed", 137, "killed")], "trainer")
        assert (obs.phase, obs.reason) == ("Failed", reason)

    def test_success_reads_the_newest_result(self) -> None:
        pods = [_pod("old", "Failed", 143, "", "t1"), _pod("new", "Succeeded", 0, '{"digest": "d"}', "t2")]
        obs = jobstatus.observe(_job([{"type": "Complete", "status": "True"}]), pods, "trainer")
        assert obs.phase == "Succeeded" and obs.result == {"digest": "d"}

    @pytest.mark.parametrize("job,pods,phase", [
        (None, [], "Pending"),
        (_job([], suspend=True), [], "Suspended"),
        (_job([]), [_pod("p", "Pending")], "Pending"),
        (_job([]), [_pod("p", "Running")], "Running"),
        # the trainer exited, the Job controller has not concluded: the phase must not go back to Pending
        (_job([]), [_pod("p", "Succeeded", 0, "{}", "t1")], "Running"),
        (_job([{"type": "SuccessCriteriaMet", "status": "True"}]), [], "Running"),
        # a failed pod with its retry not started yet is waiting, not running
        (_job([]), [_pod("old", "Failed", 1, "", "t1"), _pod("retry", "Pending")], "Pending"),
    ])
    def test_in_flight_phases(self, job: Any, pods: list, phase: str) -> None:
        assert jobstatus.observe(job, pods, "trainer").phase == phase
