"""Kueue for real: the controller manager built from sigs.k8s.io/kueue (hack/build-kueue.sh), its
CRDs and webhooks, a ClusterQueue with 4 GPUs, and two TrainingJobs of 3 GPUs each. One runs; the
other waits with its Job suspended, the TrainingJob `Queued` with the reason Kueue gives in its
Workload, and it is admitted, and trains for real, once the first has finished.

    make test-kueue     # builds Kueue once (cached in ~/.cache/acgs/bin), needs root (hack/kueue.py)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from ..cluster.conftest import podrunner, pvc  # noqa: F401  (podrunner: a fixture, used by name)
from ..conftest import Cluster, wait_until
from acgs_contract.constitution import CONSTITUTIONAL_HASH

import kueue  # hack/kueue.py (tests/conftest.py puts hack/ on the path)

# Decided before any fixture starts a control plane (a skipif mark is): not in CI, see README.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.kueue,
              pytest.mark.skipif(os.environ.get("ACGS_KUEUE") != "1",
                                 reason="needs Kueue: run `make test-kueue` (builds it from sigs.k8s.io/kueue "
                                        "once; root; see README)")]

GPUS = 3  # per TrainingJob: two exceed the ClusterQueue's quota of 4, one fits
assert 2 * GPUS > kueue.GPU_QUOTA >= GPUS


@pytest.fixture(scope="module")
def kueue_up(operator: Cluster) -> Iterator[Cluster]:
    """Kueue running; kueue.up() restarts the running operator once Kueue's CRDs exist, so it
    watches Workloads (it scans CRDs once, at start)."""
    if os.geteuid() != 0:
        pytest.fail("Kueue's local run needs root (hack/kueue.py: its metrics certificate path); run as root")
    kueue.up()
    yield operator
    kueue.down()


def training_job(namespace: str, name: str) -> str:
    body = {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"constitutionalHash": CONSTITUTIONAL_HASH, "modelName": "constitutional-ai",
                     "queueName": kueue.LOCAL_QUEUE,
                     "data": {"generate": {"type": "constitutional_ai", "size": 40}},
                     "training": {"maxSteps": 8, "batchSize": 8, "checkpointEvery": 50},
                     "resources": {"cpu": "1", "memory": "2Gi", "gpus": GPUS,
                                   # where the pod runner runs it for real; Kueue adds the flavor's labels
                                   "nodeSelector": {"acgs.io/local-runner": "true"},
                                   "tolerations": [{"key": "acgs.io/local-runner", "operator": "Exists",
                                                    "effect": "NoSchedule"}]},
                     "output": {"pvc": "artifacts"}, "backoffLimit": 0}}
    return yaml.safe_dump(body)


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("trainingjob", name, "-n", namespace).get("status") or {}


def job(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("job", f"{name}-train", "-n", namespace)


def unsuspended_job(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The TrainingJob's Job once Kueue has admitted it (None before it exists or while suspended)."""
    proc = cluster.kubectl("get", "job", f"{name}-train", "-n", namespace, "-o", "json")
    found: dict[str, Any] | None = yaml.safe_load(proc.stdout) if proc.returncode == 0 else None
    return found if found and found["spec"].get("suspend") is False else None


def workload_of(cluster: Cluster, namespace: str, job_uid: str) -> dict[str, Any] | None:
    items = cluster.get_json("workloads.kueue.x-k8s.io", "-n", namespace, "-l",
                             f"kueue.x-k8s.io/job-uid={job_uid}")["items"]
    return items[0] if items else None


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


@pytest.mark.usefixtures("podrunner")  # the trainers run for real on the pod runner's node
def test_over_quota_training_job_waits_queued_then_runs(kueue_up: Cluster, namespace: str) -> None:
    cluster = kueue_up
    kueue.add_queue(namespace)
    pvc(cluster, namespace, "artifacts")

    cluster.kubectl("apply", "-f", "-", check=True, input=training_job(namespace, "first"))
    first_job = wait_until(lambda: unsuspended_job(cluster, namespace, "first"), 60,
                           "Kueue to admit the first TrainingJob's Job")
    first_wl = workload_of(cluster, namespace, first_job["metadata"]["uid"])
    assert first_wl is not None and (condition(first_wl, "Admitted") or {}).get("status") == "True"
    # Kueue injected its flavor's node labels on admission; the operator had not set them.
    assert first_job["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.present"] == "true"

    cluster.kubectl("apply", "-f", "-", check=True, input=training_job(namespace, "second"))

    def queued_with_kueues_reason() -> tuple[dict[str, Any], dict[str, Any]] | None:
        st = status(cluster, namespace, "second")
        j = cluster.kubectl("get", "job", "second-train", "-n", namespace, "-o", "json")
        if st.get("phase") != "Queued" or j.returncode:
            return None
        wl = workload_of(cluster, namespace, yaml.safe_load(j.stdout)["metadata"]["uid"])
        reserved = condition(wl, "QuotaReserved") if wl else None
        if not reserved or reserved["status"] != "False" or not reserved.get("message"):
            return None
        mine = next(c for c in st["conditions"] if c["type"] == "Queued")
        return (mine, reserved) if mine["message"].endswith(reserved["message"]) else None

    mine, reserved = wait_until(queued_with_kueues_reason, 60, "the second TrainingJob Queued with Kueue's reason")
    assert mine["status"] == "True" and mine["reason"] == reserved["reason"]
    assert "insufficient unused quota for nvidia.com/gpu" in reserved["message"], reserved
    second_job = job(cluster, namespace, "second")
    assert second_job["spec"]["suspend"] is True
    assert cluster.get_json("pods", "-n", namespace, "-l", "job-name=second-train")["items"] == []

    done = wait_until(lambda: (s := status(cluster, namespace, "first")).get("phase") in ("Succeeded", "Failed")
                      and s, 300, "the first TrainingJob to finish")
    assert done["phase"] == "Succeeded", done.get("message")

    # The quota is free: Kueue admits the second, which then trains to the end (the operator
    # never re-suspends what Kueue unsuspended: it created the Job once and does not patch it).
    wait_until(lambda: unsuspended_job(cluster, namespace, "second"), 60,
               "Kueue to admit the second TrainingJob once the first finished")
    second = wait_until(lambda: (s := status(cluster, namespace, "second")).get("phase") in ("Succeeded", "Failed")
                        and s, 300, "the second TrainingJob to finish")
    assert second["phase"] == "Succeeded", second.get("message")
    queued = next(c for c in second["conditions"] if c["type"] == "Queued")
    assert queued["status"] == "False"
    wl = workload_of(cluster, namespace, second_job["metadata"]["uid"])
    assert wl is not None and (condition(wl, "Admitted") or {}).get("status") == "True"
    assert wl["status"]["admission"]["podSetAssignments"][0]["flavors"]["nvidia.com/gpu"] == kueue.FLAVOR
