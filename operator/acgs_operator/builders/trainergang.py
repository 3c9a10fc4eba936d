"""A TrainingJob with several training processes: how torchrun starts them and how they find each
other. Pure functions, used by builders/trainingjob.py.

``workers`` > 1 pods form an Indexed Job; pod i's hostname is ``<job>-<i>`` and, with the pod
template's subdomain set to the headless Service, ``<job>-<i>.<service>`` resolves to it. Every pod
runs ``acgs-torchrun`` (torchrun that exits with the failing trainer's own code, so the Job's
podFailurePolicy still tells a budget halt from a crash) with c10d rendezvous at pod 0's name;
``gpus`` > 1 starts that many processes per pod (NCCL), one per pod on CPU (gloo).
"""

from __future__ import annotations

from typing import Any

from ..api.trainingjob import TrainingJobSpec
from ..constants import LABEL_COMPONENT
from .common import Owner

RENDEZVOUS_PORT = 29400  # torchrun's c10d default
RENDEZVOUS_PORT_NAME = "rendezvous"
POD_IP_ENV = "POD_IP"


def is_gang(spec: TrainingJobSpec) -> bool:
    """Several training processes (pods or GPUs): torchrun starts them, not a plain acgs-train."""
    return spec.workers > 1 or spec.resources.gpus > 1


def processes_per_pod(spec: TrainingJobSpec) -> int:
    return max(1, spec.resources.gpus)


def service_name(job_name: str) -> str:
    """The headless Service is named like the Job, so pod 0 is ``<job>-0.<job>``."""
    return job_name


def rendezvous_endpoint(job_name: str) -> str:
    return f"{job_name}-0.{service_name(job_name)}:{RENDEZVOUS_PORT}"


def command(spec: TrainingJobSpec, owner: Owner, job_name: str, train: list[str]) -> list[str]:
    """``train`` itself for one process; torchrun around it for a gang."""
    if not is_gang(spec):
        return train
    # --max-restarts=0: a failed worker fails its pod and the Job (backoffLimit, podFailurePolicy)
    # decides about a retry; the new gang resumes from rank 0's checkpoint.
    launch = ["acgs-torchrun", f"--nnodes={spec.workers}", f"--nproc-per-node={processes_per_pod(spec)}",
              "--max-restarts=0"]
    if spec.workers == 1:
        launch.append("--standalone")  # one pod: a local rendezvous, no Service
    else:
        # $(POD_IP): the kubelet expands it from the container's env; peers reach the workers of
        # this pod at its IP, so only pod 0's name needs DNS.
        launch += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rendezvous_endpoint(job_name)}",
                   f"--rdzv-id={owner.uid}", f"--local-addr=$({POD_IP_ENV})"]
    return [*launch, "--no-python", *train]


def peers(owner_name: str, job_label: str, component: str) -> list[dict[str, Any]]:
    """NetworkPolicy peers (and the Service's selector): the trainer pods of this TrainingJob."""
    return [{"podSelector": {"matchLabels": {job_label: owner_name[:63], LABEL_COMPONENT: component}}}]


def headless_service(metadata: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    """DNS names for the gang's pods, published before they are ready: the rendezvous happens
    before any pod could be called ready."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector,
            "ports": [{"name": RENDEZVOUS_PORT_NAME, "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT,
                       "protocol": "TCP"}],
        },
    }
