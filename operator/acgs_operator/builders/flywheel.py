"""The FlywheelPolicy's collector Job. Pure functions: no API calls.

The collector runs ``acgs-data flywheel-collect`` on the Deployment's interaction-log claim,
mounted read-only (it counts, it never consumes), on the nodes the Deployment's servers run on (a
ReadWriteOnce claim is reachable there), and leaves its result (acgs_contract.flywheel) as its
termination message."""

from __future__ import annotations

from typing import Any

from ..api.deployment import DeploymentSpec
from ..api.flywheel import FlywheelPolicySpec
from .common import Owner, child_labels, child_metadata, child_name, short_job_pod_spec

COLLECT_COMPONENT = "flywheel-collector"
COLLECT_CONTAINER = "collect"
LOG_MOUNT = "/interaction-volume"
# builders.deployment mounts the claim at /var/log/acgs and the server writes to its interactions/.
LOG_SUBDIR = "interactions"
TERMINATION_LOG = "/dev/termination-log"


def collect_job_name(policy: str, started: float) -> str:
    """One Job per collection (the operator may not delete Jobs; finished ones expire by TTL)."""
    return child_name(policy, f"collect-{int(started)}")


def collect_command(constitutional_hash: str) -> list[str]:
    return ["acgs-data", "--constitutional-hash", constitutional_hash, "flywheel-collect",
            "--dir", f"{LOG_MOUNT}/{LOG_SUBDIR}", "--termination-log", TERMINATION_LOG]


def build_collect_job(owner: Owner, spec: FlywheelPolicySpec, deployment: DeploymentSpec, claim: str,
                      image: str, started: float) -> dict[str, Any]:
    """A short Job counting the usable records of ``claim`` (the Deployment's interactionLogPvc)."""
    labels = child_labels(owner.kind, owner.name, spec.constitutional_hash, COLLECT_COMPONENT)
    pod_spec = short_job_pod_spec(
        COLLECT_CONTAINER, image, collect_command(spec.constitutional_hash),
        [{"name": "interactions", "mountPath": LOG_MOUNT, "readOnly": True}],
        [{"name": "interactions", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
        tmp={"sizeLimit": "64Mi"})
    if deployment.resources.node_selector:
        pod_spec["nodeSelector"] = dict(deployment.resources.node_selector)
    if deployment.resources.tolerations:
        pod_spec["tolerations"] = [t.to_api() for t in deployment.resources.tolerations]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": child_metadata(owner, collect_job_name(owner.name, started), labels),
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 300,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
