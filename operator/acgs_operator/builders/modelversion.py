"""ModelVersion records and their verification Job. Pure functions: no API calls.

Semver policy (docs/training.md): the new version is the parent's version bumped by the
TrainingJob's versionPolicy (pre-release and build parts dropped); without a parent the base is
0.0.0, so the first version is 0.1.0 (minor, the default), 1.0.0 (major) or 0.0.1 (patch). When
that version is taken in the namespace by a model another TrainingJob produced, the same part is
bumped again until a free one is found.
"""

from __future__ import annotations

import json
from typing import Any

from acgs_contract import exitcodes
from acgs_contract.result import TrainerResult, VerifyResult

from ..api.modelversion import Artifact, Lineage, Metrics, ModelVersionSpec, Stage, model_version_name
from ..api.trainingjob import TrainingJobSpec
from ..artifacts import UnsupportedArtifact, parse_pvc
from ..constants import API_VERSION
from .basemodel import base_model_volumes
from .common import Owner, child_labels, child_metadata, child_name, short_job_pod_spec

ANNOTATION_VERIFY_SCHEDULING = "acgs.io/verify-scheduling"
LABEL_MODEL = "acgs.io/model-name"
VERIFY_COMPONENT = "verifier"
VERIFY_CONTAINER = "verify"
VOLUME_MOUNT = "/artifact-volume"
TERMINATION_LOG = "/dev/termination-log"


def verify_command(artifact_path: str, digest: str, constitutional_hash: str,
                   constitution_digest: str | None = None) -> list[str]:
    """``constitution_digest``: the content the operator's configuration pins to the hash; the
    artifact's constitution must be exactly that (default: the contract's pin)."""
    pinned = ["--constitution-digest", constitution_digest] if constitution_digest else []
    return ["acgs-train", "verify", "--artifact", artifact_path, "--digest", digest,
            "--constitutional-hash", constitutional_hash, *pinned, "--termination-log", TERMINATION_LOG]


def _metrics(result: TrainerResult | VerifyResult) -> Metrics:
    measured = result.metrics or {}
    base = getattr(result, "base_metrics", None) or {}  # the base model's own held-out score
    return Metrics(accuracy=measured.get("accuracy"), compliance_score=measured.get("complianceScore"),
                   eval_loss=measured.get("evalLoss"), epsilon=result.epsilon, delta=result.delta,
                   base_compliance_score=base.get("complianceScore"), base_accuracy=base.get("accuracy"))


def build_model_version(spec: TrainingJobSpec, tj_name: str, namespace: str, version: str,
                        parent: str | None, artifact_uri: str, result: TrainerResult,
                        scheduling: dict[str, Any]) -> dict[str, Any]:
    """The ModelVersion for a successful run, from the trainer's result (never invented figures)."""
    mv_spec = ModelVersionSpec(
        constitutional_hash=spec.constitutional_hash, model_name=spec.model_name, version=version,
        artifact=Artifact(uri=artifact_uri, digest=str(result.digest)), base_model=spec.base_model,
        lineage=Lineage(parent_version=parent, training_job=tj_name, data_digest=result.data_digest),
        metrics=_metrics(result), stage=Stage.CANDIDATE,
    )
    labels = child_labels("TrainingJob", tj_name, spec.constitutional_hash, "model-version",
                          {LABEL_MODEL: spec.model_name})
    return {
        "apiVersion": API_VERSION, "kind": "ModelVersion",
        "metadata": {"name": model_version_name(spec.model_name, version), "namespace": namespace,
                     "labels": labels,
                     "annotations": {ANNOTATION_VERIFY_SCHEDULING: json.dumps(scheduling, sort_keys=True)}},
        "spec": mv_spec.to_api(),
    }


def verified_metrics(result: VerifyResult) -> Metrics:
    """The figures `acgs-train verify` read from the verified manifest, rounded as spec.metrics is."""
    return _metrics(result)


def metric_mismatches(declared: Metrics, verified: Metrics) -> list[str]:
    """Each figure the spec declares that its artifact does not record, naming both values."""
    problems = []
    for name, value in declared.to_api().items():
        actual = verified.to_api().get(name)
        if actual != value:
            problems.append(f"spec.metrics.{name} is {value} but the artifact records "
                            f"{'none' if actual is None else actual}")
    return problems


def artifact_location(uri: str) -> tuple[str, str] | None:
    """pvc://<claim>/<path> → (claim, path); None for URIs a verify Job cannot mount."""
    try:
        artifact = parse_pvc(uri)
    except UnsupportedArtifact:
        return None
    return artifact.claim, artifact.path


def verify_job_name(mv_name: str) -> str:
    return child_name(mv_name, "verify")


def build_verify_job(owner: Owner, spec: ModelVersionSpec, image: str, scheduling: dict[str, Any],
                     constitution_digest: str | None = None, model_cache_pvc: str | None = None
                     ) -> dict[str, Any]:
    """A short Job that runs `acgs-train verify`: the manifest, every file's sha256 and the overall
    digest of the artifact, the outcome as JSON in its termination message. It mounts only the
    artifact's directory of the claim (subPath), read-only, and a base model outside the artifact
    read-only where the manifest says it is (its digest is checked before it loads)."""
    artifact = parse_pvc(spec.artifact.uri, "spec.artifact.uri")
    claim, path = artifact.claim, artifact.path
    base_volumes, base_mounts = base_model_volumes(spec.base_model, model_cache_pvc)
    labels = child_labels(owner.kind, owner.name, spec.constitutional_hash, VERIFY_COMPONENT)
    pod_spec = short_job_pod_spec(
        VERIFY_CONTAINER, image,
        verify_command(VOLUME_MOUNT, spec.artifact.digest, spec.constitutional_hash, constitution_digest),
        [{"name": "artifact", "mountPath": VOLUME_MOUNT, "subPath": path, "readOnly": True}, *base_mounts],
        [{"name": "artifact", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}, *base_volumes])
    if scheduling.get("nodeSelector"):
        pod_spec["nodeSelector"] = scheduling["nodeSelector"]
    if scheduling.get("tolerations"):
        pod_spec["tolerations"] = scheduling["tolerations"]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": child_metadata(owner, verify_job_name(owner.name), labels),
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 900,
            "ttlSecondsAfterFinished": 3600,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In",
                                                      "values": list(exitcodes.VERIFY_NON_RETRIABLE)}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
