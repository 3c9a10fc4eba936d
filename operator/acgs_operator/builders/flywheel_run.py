"""The children of a flywheel run: the workspace claim, the prepare Job, the eval Jobs and the
fine-tunes' TrainingJobs. Pure functions: no API calls.

Each Job runs a trainer-image step (acgs_contract.flywheel) in the restricted short-Job pod
(builders.common.short_job_pod_spec) with the run's workspace mounted read-write at /workspace,
on the Deployment's nodes (where its ReadWriteOnce claims are reachable), and leaves its result as
the termination message. Names are deterministic (policy, run id, candidate): a restarted operator
finds what it started, and applying a child twice changes nothing."""

from __future__ import annotations

import hashlib
from typing import Any

from acgs_contract import flywheel as contract

from ..api.common import Resources
from ..api.flywheel import Candidate, FlywheelPolicySpec
from ..api.trainingjob import TrainingJobSpec
from ..artifacts import parse_pvc
from ..constants import API_VERSION
from .basemodel import HF_CACHE_DIR, HF_CACHE_ENV, base_model_volumes
from .common import Owner, child_labels, child_metadata, child_name, short_job_pod_spec
from .flywheel import LOG_MOUNT, LOG_SUBDIR, TERMINATION_LOG

PREPARE_COMPONENT, EVAL_COMPONENT, FINE_TUNE_COMPONENT = "flywheel-prepare", "flywheel-eval", "flywheel-fine-tune"
PREPARE_CONTAINER, EVAL_CONTAINER = "prepare", "eval"
WORKSPACE_MOUNT = "/workspace"
ARTIFACT_MOUNT = "/artifact"
WORKSPACE_SIZE = "1Gi"
LABEL_RUN = "acgs.io/flywheel-run"
# Long enough to be read by the next tick even after an operator outage; a run that finds its Job
# gone applies it again (an eval) or fails (a prepare: a rerun would charge the privacy ledger twice).
JOB_TTL_SECONDS = 86400


def workspace_name(policy: str) -> str:
    return child_name(policy, "workspace")


def _short(candidate: str) -> str:
    """A candidate name short enough for a child name (a long one keeps a prefix and a hash)."""
    if len(candidate) <= 20:
        return candidate
    return f"{candidate[:11]}-{hashlib.sha256(candidate.encode()).hexdigest()[:8]}"


def prepare_job_name(policy: str, run_id: str) -> str:
    return child_name(policy, f"{run_id}-prepare")


def eval_job_name(policy: str, run_id: str, candidate: str) -> str:
    return child_name(policy, f"{run_id}-{_short(candidate)}-eval")


def training_job_name(policy: str, run_id: str, candidate: str) -> str:
    return child_name(policy, f"{run_id}-{_short(candidate)}-ft", limit=52)  # its Job and Secret add suffixes


def build_workspace_pvc(owner: Owner, spec: FlywheelPolicySpec) -> dict[str, Any]:
    """The policy's workspace (default StorageClass): owned, so it goes with the policy."""
    labels = child_labels(owner.kind, owner.name, spec.constitutional_hash, "flywheel-workspace")
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": child_metadata(owner, workspace_name(owner.name), labels),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": WORKSPACE_SIZE}}}}


def _with_resources(pod_spec: dict[str, Any], resources: Resources, scheduling: Resources) -> dict[str, Any]:
    container = pod_spec["containers"][0]
    container["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"},
                              "limits": {"cpu": resources.cpu, "memory": resources.memory}}
    container["env"].append({"name": "HF_HUB_OFFLINE", "value": "1"})
    if scheduling.node_selector:
        pod_spec["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.tolerations:
        pod_spec["tolerations"] = [t.to_api() for t in scheduling.tolerations]
    return pod_spec


def _job(owner: Owner, name: str, labels: dict[str, str], pod_spec: dict[str, Any], deadline: int) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": child_metadata(owner, name, labels),
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline, "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}}}


def _workspace_volume(workspace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return ({"name": "workspace", "persistentVolumeClaim": {"claimName": workspace}},
            {"name": "workspace", "mountPath": WORKSPACE_MOUNT})


def prepare_command(spec: FlywheelPolicySpec, run: dict[str, Any]) -> list[str]:
    fine_tunes = sum(c.kind == "FineTune" for c in spec.candidates)
    return ["acgs-data", "--constitutional-hash", spec.constitutional_hash, "flywheel-prepare",
            "--log-dir", f"{LOG_MOUNT}/{LOG_SUBDIR}", "--workspace", WORKSPACE_MOUNT, "--run-id", run["id"],
            "--seed", str(spec.seed), "--eval-size", str(spec.thresholds.eval_size),
            "--val-ratio", str(spec.thresholds.val_ratio), "--expected-digest", run["snapshotDigest"],
            "--record-epsilon-limit", str(spec.record_epsilon_limit),
            "--finetune-epsilon", str(spec.privacy_epsilon), "--finetunes", str(fine_tunes),
            "--termination-log", TERMINATION_LOG]


def build_prepare_job(owner: Owner, spec: FlywheelPolicySpec, run: dict[str, Any], log_claim: str,
                      workspace: str, scheduling: Resources, image: str) -> dict[str, Any]:
    """Snapshot, judge, charge the privacy ledger and split: the log read-only, the workspace read-write."""
    labels = child_labels(owner.kind, owner.name, spec.constitutional_hash, PREPARE_COMPONENT, {LABEL_RUN: run["id"]})
    ws_volume, ws_mount = _workspace_volume(workspace)
    pod_spec = short_job_pod_spec(
        PREPARE_CONTAINER, image, prepare_command(spec, run),
        [ws_mount, {"name": "interactions", "mountPath": LOG_MOUNT, "readOnly": True}],
        [ws_volume, {"name": "interactions", "persistentVolumeClaim": {"claimName": log_claim, "readOnly": True}}],
        tmp={"sizeLimit": "256Mi"})
    return _job(owner, prepare_job_name(owner.name, run["id"]), labels,
                _with_resources(pod_spec, spec.resources, scheduling), 1800)


def eval_command(spec: FlywheelPolicySpec, run_id: str, candidate: str, kind: str, *,
                 base_model: str | None = None, in_context_examples: int | None = None,
                 artifact_digest: str | None = None, constitution_digest: str | None = None) -> list[str]:
    """``constitution_digest``: the content the operator pins to the hash (as the verify Job's)."""
    command = ["acgs-train", "flywheel-eval", "--workspace", WORKSPACE_MOUNT, "--run-id", run_id,
               "--candidate", candidate, "--kind", kind, "--seed", str(spec.seed)]
    if constitution_digest:
        command += ["--constitution-digest", constitution_digest]
    if artifact_digest is not None:
        command += ["--artifact", ARTIFACT_MOUNT, "--expected-digest", artifact_digest]
    else:
        command += ["--base-model", str(base_model)]
        if in_context_examples is not None:
            command += ["--in-context-examples", str(in_context_examples)]
    return command + ["--constitutional-hash", spec.constitutional_hash, "--termination-log", TERMINATION_LOG]


def build_eval_job(owner: Owner, spec: FlywheelPolicySpec, run_id: str, name: str, kind: str, workspace: str,
                   scheduling: Resources, image: str, model_cache_pvc: str | None, *,
                   candidate: Candidate | None = None, artifact_uri: str | None = None,
                   artifact_digest: str | None = None, artifact_base: str = "",
                   constitution_digest: str | None = None) -> dict[str, Any]:
    """Score one model on the run's eval set: a base spec (Base, InContext) or a verified artifact
    (FineTune, production; mounted read-only, only its directory). Raises UnsupportedArtifact or
    ValueError (naming the field) for an artifact or base it cannot mount."""
    labels = child_labels(owner.kind, owner.name, spec.constitutional_hash, EVAL_COMPONENT, {LABEL_RUN: run_id})
    ws_volume, ws_mount = _workspace_volume(workspace)
    volumes, mounts = [ws_volume], [ws_mount]
    if artifact_uri is not None:
        artifact = parse_pvc(artifact_uri, f"the artifact of candidate {name}")
        volumes.append({"name": "artifact", "persistentVolumeClaim": {"claimName": artifact.claim, "readOnly": True}})
        mounts.append({"name": "artifact", "mountPath": ARTIFACT_MOUNT, "subPath": artifact.path, "readOnly": True})
        base = artifact_base
        command = eval_command(spec, run_id, name, kind, artifact_digest=artifact_digest,
                               constitution_digest=constitution_digest)
    else:
        assert candidate is not None
        base = candidate.base_model
        examples = candidate.in_context_examples if kind == contract.KIND_IN_CONTEXT else None
        command = eval_command(spec, run_id, name, kind, base_model=base, in_context_examples=examples,
                               constitution_digest=constitution_digest)
    base_volumes, base_mounts = base_model_volumes(base, model_cache_pvc, f"the base model of candidate {name}")
    pod_spec = short_job_pod_spec(EVAL_CONTAINER, image, command, mounts + base_mounts, volumes + base_volumes,
                                  tmp={"sizeLimit": "1Gi"})
    if model_cache_pvc and base_mounts:
        pod_spec["containers"][0]["env"].append({"name": HF_CACHE_ENV, "value": HF_CACHE_DIR})
    return _job(owner, eval_job_name(owner.name, run_id, name), labels,
                _with_resources(pod_spec, spec.resources, scheduling), 3600)


def build_training_job(owner: Owner, spec: FlywheelPolicySpec, run: dict[str, Any], candidate: Candidate,
                       workspace: str, production_model_version: str, model_name: str, output_claim: str,
                       scheduling: Resources) -> dict[str, Any]:
    """A DP LoRA fine-tune of `candidate` on the run's train split, continuing the production
    ModelVersion's family (the Deployment that follows the stage can then serve it) and writing
    where the production artifact is (a claim the Deployment may mount)."""
    train_path = f"/{contract.run_dir(run['id'])}/{contract.TRAIN_FILE}"
    training: dict[str, Any] = {"seed": spec.seed, "batchSize": 8}
    if candidate.max_steps is not None:
        training["maxSteps"] = candidate.max_steps
    tj_spec = TrainingJobSpec.model_validate({
        "constitutionalHash": spec.constitutional_hash, "modelName": model_name,
        "baseModel": candidate.base_model, "parentVersion": production_model_version, "versionPolicy": "minor",
        "data": {"pvc": workspace, "path": train_path, "valRatio": spec.thresholds.val_ratio,
                 "splitSeed": spec.seed},
        "lora": {"r": candidate.lora_rank}, "training": training,
        "privacy": {"enabled": True, "targetEpsilon": spec.privacy_epsilon},
        "resources": {"cpu": spec.resources.cpu, "memory": spec.resources.memory, "gpus": spec.resources.gpus,
                      "gpuResourceName": spec.resources.gpu_resource_name,
                      "nodeSelector": dict(scheduling.node_selector),
                      "tolerations": [t.to_api() for t in scheduling.tolerations]},
        "output": {"pvc": output_claim},
        "backoffLimit": 0,
    })
    labels = child_labels(owner.kind, owner.name, spec.constitutional_hash, FINE_TUNE_COMPONENT,
                          {LABEL_RUN: run["id"]})
    return {"apiVersion": API_VERSION, "kind": "TrainingJob",
            "metadata": child_metadata(owner, training_job_name(owner.name, run["id"], candidate.name), labels),
            "spec": tj_spec.to_api()}
