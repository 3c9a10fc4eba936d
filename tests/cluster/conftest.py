"""Fixtures for tests whose pods run for real: the local pod runner (hack/podrunner/) and pod
specs that land on its node, acgs-local-0."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..conftest import Cluster, localcluster, wait_until  # noqa: F401  (re-exported for the e2e modules)

LOCAL_NODE = localcluster.LOCAL_NODE
# The node that carries acgs.io/local-runner: the pod runner's, or with ACGS_REAL_NODE=1 the kubelet's.
RUNNER_NODE = "acgs-real-0" if localcluster.REAL_NODE else LOCAL_NODE
# The CPU the e2e pods request: the kubelet node has this machine's cores (2 here), and a rollout
# runs two server colors beside a verification Job (its kubelet does not throttle to the limit).
RUNNER_CPU = "250m" if localcluster.REAL_NODE else "1"

# Namespaces from the `namespace` fixture enforce restricted Pod Security, so specs carry the fields
# it asks for. The runner runs every process as root anyway: nothing here enforces them.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
ON_LOCAL_NODE = {
    "nodeSelector": {"acgs.io/local-runner": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "acgs.io/local-runner", "operator": "Exists", "effect": "NoSchedule"}],
}


def local_pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` scheduled onto the pod runner's node, with restricted Pod Security fields."""
    out = {**copy.deepcopy(spec), **copy.deepcopy(ON_LOCAL_NODE), "securityContext": POD_SECURITY}
    for container in out.get("initContainers", []) + out["containers"]:
        container.setdefault("image", "python:3.11-slim")
        container["securityContext"] = CONTAINER_SECURITY
    return out


def apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": list(objects)}), check=True)


@pytest.fixture(scope="session")
def podrunner(cluster: Cluster) -> Iterator[Path]:
    """The pod runner of this cluster: `localcluster.up()` starts it; a cluster brought up before the
    runner existed gets one here (and `localcluster down` stops it by its pidfile). With the real
    node (ACGS_REAL_NODE=1, `make test-realnode-e2e`) there is none: the kubelet node carries the
    runner's label and runs the same pods as containers from the product's images."""
    if localcluster.REAL_NODE:
        yield localcluster.STATE
        return
    if localcluster.pid_of("podrunner") is None:
        localcluster.start_podrunner()
    log = localcluster.LOGS / "podrunner.log"
    wait_until(lambda: log.exists() and "running pods bound to" in log.read_text(errors="replace"), 30,
               "the pod runner to start")
    yield localcluster.STATE
    assert localcluster.pid_of("podrunner") is not None, "the pod runner died during the tests; see its log"


def pvc(cluster: Cluster, namespace: str, claim: str) -> Path:
    """A claim of the default StorageClass (hack/provisioner.py binds it); returns the host
    directory the pod runner mounts for it."""
    apply(cluster, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim, "namespace": namespace},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    wait_until(lambda: cluster.kubectl("get", "pvc", claim, "-n", namespace, "-o",
                                       "jsonpath={.status.phase}").stdout == "Bound", 30, f"PVC {claim} bound")
    return localcluster.STATE / "volumes" / "pvc" / namespace / claim
