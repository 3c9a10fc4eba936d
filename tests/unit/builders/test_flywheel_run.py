"""The children of a flywheel run: workspace claim, prepare Job, eval Jobs, fine-tune TrainingJobs."""

from __future__ import annotations

from typing import Any

import pytest
from acgs_contract.constitution import CONSTITUTIONAL_HASH

from acgs_operator.api.common import Resources
from acgs_operator.api.flywheel import FlywheelPolicySpec
from acgs_operator.api.trainingjob import TrainingJobSpec
from acgs_operator.artifacts import UnsupportedArtifact
from acgs_operator.builders import flywheel_run as runb
from acgs_operator.builders.common import Owner

OWNER = Owner(kind="FlywheelPolicy", name="fw", namespace="ns", uid="uid-1")
SPEC = FlywheelPolicySpec.model_validate({
    "constitutionalHash": CONSTITUTIONAL_HASH, "deploymentRef": "srv", "seed": 7, "privacyEpsilon": 4,
    "recordEpsilonLimit": 8, "thresholds": {"minRecords": 30, "evalSize": 12, "valRatio": 0.2},
    "candidates": [{"name": "ft", "baseModel": "builtin:tiny-llama", "loraRank": 4, "maxSteps": 6},
                   {"name": "ft2", "baseModel": "builtin:tiny-llama"},
                   {"name": "icl", "kind": "InContext", "baseModel": "pvc://models/tiny", "inContextExamples": 3}]})
RUN = {"id": "run-abc", "snapshotDigest": "sha256:" + "11" * 32}
SCHED = Resources.model_validate({"nodeSelector": {"n": "0"}, "tolerations": [{"key": "k", "operator": "Exists"}]})
DIGEST = "sha256:" + "aa" * 32


def pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def assert_restricted_and_owned(job: dict[str, Any]) -> None:
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    spec = pod(job)
    c = spec["containers"][0]
    assert spec["automountServiceAccountToken"] is False and spec["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["nodeSelector"] == {"n": "0"} and spec["tolerations"][0]["key"] == "k"
    assert job["spec"]["backoffLimit"] == 0  # a retried prepare would charge the privacy ledger twice


def mounts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in pod(job)["containers"][0]["volumeMounts"]}


class TestWorkspace:
    def test_owned_claim_named_after_the_policy(self) -> None:
        pvc = runb.build_workspace_pvc(OWNER, SPEC)
        assert pvc["metadata"]["name"] == "fw-workspace" and pvc["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


class TestPrepareJob:
    def test_command_carries_the_split_and_the_privacy_charge(self) -> None:
        job = runb.build_prepare_job(OWNER, SPEC, RUN, "logs", "fw-workspace", SCHED, "trainer:1")
        assert_restricted_and_owned(job)
        cmd = pod(job)["containers"][0]["command"]
        args = dict(zip(cmd[4::2], cmd[5::2]))
        assert cmd[:4] == ["acgs-data", "--constitutional-hash", CONSTITUTIONAL_HASH, "flywheel-prepare"]
        assert args == {"--log-dir": "/interaction-volume/interactions", "--workspace": "/workspace",
                        "--run-id": "run-abc", "--seed": "7", "--eval-size": "12", "--val-ratio": "0.2",
                        "--expected-digest": RUN["snapshotDigest"], "--record-epsilon-limit": "8.0",
                        "--finetune-epsilon": "4.0", "--finetunes": "2", "--termination-log": "/dev/termination-log"}

    def test_log_read_only_and_workspace_writable(self) -> None:
        job = runb.build_prepare_job(OWNER, SPEC, RUN, "logs", "fw-workspace", SCHED, "trainer:1")
        m = mounts(job)
        assert m["/interaction-volume"]["readOnly"] is True and not m["/workspace"].get("readOnly")
        claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod(job)["volumes"]}
        assert claims["interactions"] == {"claimName": "logs", "readOnly": True}
        assert claims["workspace"] == {"claimName": "fw-workspace"}
        assert job["metadata"]["name"] == "fw-run-abc-prepare"


class TestEvalJob:
    def test_artifact_mounted_read_only_and_checked_by_digest(self) -> None:
        job = runb.build_eval_job(OWNER, SPEC, "run-abc", "production", "production", "fw-workspace", SCHED,
                                  "trainer:1", None, artifact_uri="pvc://artifacts/cai/1/artifact",
                                  artifact_digest=DIGEST, artifact_base="builtin:tiny-llama")
        assert_restricted_and_owned(job)
        cmd = pod(job)["containers"][0]["command"]
        assert cmd[:2] == ["acgs-train", "flywheel-eval"]
        assert cmd[cmd.index("--artifact") + 1] == "/artifact" and cmd[cmd.index("--expected-digest") + 1] == DIGEST
        assert cmd[cmd.index("--kind") + 1] == "production" and "--base-model" not in cmd
        art = mounts(job)["/artifact"]
        assert art["readOnly"] is True and art["subPath"] == "cai/1/artifact"

    def test_in_context_candidate_names_its_base_and_examples(self) -> None:
        icl = SPEC.candidates[2]
        job = runb.build_eval_job(OWNER, SPEC, "run-abc", "icl", "in-context", "fw-workspace", SCHED, "trainer:1",
                                  None, candidate=icl)
        cmd = pod(job)["containers"][0]["command"]
        assert cmd[cmd.index("--base-model") + 1] == "pvc://models/tiny"
        assert cmd[cmd.index("--in-context-examples") + 1] == "3"
        assert mounts(job)["/models/models/tiny"]["readOnly"] is True  # the base's claim, read-only
        assert job["metadata"]["name"] == "fw-run-abc-icl-eval"

    def test_an_artifact_it_cannot_mount_is_refused_by_name(self) -> None:
        with pytest.raises(UnsupportedArtifact, match="candidate ft"):
            runb.build_eval_job(OWNER, SPEC, "run-abc", "ft", "fine-tune", "w", SCHED, "t", None,
                                artifact_uri="s3://bucket/x", artifact_digest=DIGEST)


class TestTrainingJob:
    def test_dp_fine_tune_on_the_train_split_continuing_production(self) -> None:
        tj = runb.build_training_job(OWNER, SPEC, RUN, SPEC.candidates[0], "fw-workspace", "cai-1-0-0", "cai",
                                     "artifacts", SCHED)
        spec = TrainingJobSpec.model_validate(tj["spec"])  # what the TrainingJob admission checks
        assert tj["metadata"]["ownerReferences"][0]["kind"] == "FlywheelPolicy"
        assert (spec.model_name, spec.parent_version, spec.base_model) == ("cai", "cai-1-0-0", "builtin:tiny-llama")
        assert spec.privacy.enabled and spec.privacy.target_epsilon == 4.0
        assert (spec.data.pvc, spec.data.path) == ("fw-workspace", "/runs/run-abc/train.jsonl")
        assert spec.lora.r == 4 and spec.training.max_steps == 6 and spec.output.pvc == "artifacts"
        assert spec.resources.gpus == 0 and spec.resources.node_selector == {"n": "0"}

    def test_names_are_deterministic_and_short(self) -> None:
        long = "a" * 63
        assert runb.training_job_name("fw", "run-abc", "ft") == "fw-run-abc-ft-ft"
        assert runb.training_job_name("fw", "run-abc", long) == runb.training_job_name("fw", "run-abc", long)
        assert len(runb.training_job_name("p" * 63, "run-abcdefghij", long)) <= 52
        assert len(runb.eval_job_name("p" * 63, "run-abcdefghij", long)) <= 63


class TestCommandsMatchTheTrainer:
    """The commands the operator builds parse with the trainer image's own parsers (one seam)."""

    def test_prepare_command_parses(self) -> None:
        from acgs_trainer import data_cli
        cmd = runb.prepare_command(SPEC, RUN)
        args = data_cli._parser().parse_args(cmd[1:])
        assert (args.command, args.run_id, args.eval_size, args.finetunes) == ("flywheel-prepare", "run-abc", 12, 2)
        assert args.expected_digest == RUN["snapshotDigest"] and args.record_epsilon_limit == 8.0

    @pytest.mark.parametrize("kind, extra", [
        ("fine-tune", {"artifact_digest": DIGEST}), ("production", {"artifact_digest": DIGEST}),
        ("base", {"base_model": "builtin:tiny-llama"}),
        ("in-context", {"base_model": "builtin:tiny-llama", "in_context_examples": 3})])
    def test_eval_command_parses(self, kind: str, extra: dict[str, Any]) -> None:
        from acgs_trainer import flywheel_eval
        cmd = runb.eval_command(SPEC, "run-abc", "c", kind, constitution_digest=DIGEST, **extra)
        assert cmd[:2] == ["acgs-train", "flywheel-eval"]
        args = flywheel_eval._parser().parse_args(cmd[2:])
        assert (args.kind, args.candidate, args.seed, args.constitution_digest) == (kind, "c", 7, DIGEST)
        assert (args.artifact is not None) == (kind in ("fine-tune", "production"))


def test_deployment_rotation_size_reaches_the_server_config() -> None:
    """spec.interactionLogMaxBytes becomes the env the server's config reads (one spelling)."""
    from acgs_contract import env

    from acgs_operator.api.deployment import DeploymentSpec
    from acgs_operator.builders import deployment as depb
    from acgs_operator.api.modelversion import ModelVersionSpec

    dep = DeploymentSpec.model_validate({"constitutionalHash": CONSTITUTIONAL_HASH, "model": {"versionRef": "v"},
                                         "interactionLogMaxBytes": 4096})
    mv = ModelVersionSpec.model_validate({"constitutionalHash": CONSTITUTIONAL_HASH, "modelName": "m",
                                          "version": "1.0.0", "baseModel": "builtin:tiny-llama",
                                          "artifact": {"uri": "pvc://a/b", "digest": DIGEST}})
    values = {e["name"]: e["value"] for e in depb._env(dep, mv, "/artifact", None) if "value" in e}
    name = env.server_var("interaction_log_max_bytes")
    assert values[name] == "4096"
    from acgs_server.config import load_config
    assert load_config([], values).interaction_log_max_bytes == 4096


def test_a_child_training_job_keeps_its_trainer_job_findable() -> None:
    """The fine-tune TrainingJob carries the policy's owner labels; its own trainer Job must still be
    labelled as a TrainingJob's (the TrainingJob handler watches Jobs by those labels)."""
    from acgs_operator.builders import trainingjob as tjb
    from acgs_operator.config import Settings
    from acgs_operator.constants import LABEL_COMPONENT, LABEL_OWNER_KIND

    tj = runb.build_training_job(OWNER, SPEC, RUN, SPEC.candidates[0], "fw-workspace", "cai-1-0-0", "cai",
                                 "artifacts", SCHED)
    tj["metadata"]["uid"] = "tj-uid"
    job = tjb.build_job(TrainingJobSpec.model_validate(tj["spec"]), Owner.of(tj), Settings())
    labels = job["metadata"]["labels"]
    assert (labels[LABEL_OWNER_KIND], labels[LABEL_COMPONENT]) == ("trainingjob", tjb.COMPONENT)
