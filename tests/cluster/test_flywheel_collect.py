"""FlywheelPolicy collect and trigger on the local control plane: real JSONL interaction logs in a
real claim of the local provisioner, counted by the collector Job running as a real process on the
pod runner's node (acgs-local-0); the counts reach the policy's status, and the acgs.io/run-now
annotation records a run on the snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acgs_contract.constitution import CONSTITUTIONAL_HASH
from acgs_trainer.flywheel import collect

from ..trainer.test_flywheel_collect import interactions
from .conftest import ON_LOCAL_NODE, RUNNER_NODE, Cluster, apply, pvc, wait_until

pytestmark = pytest.mark.cluster


def fwp(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("flywheelpolicies.acgs.io", name, "-n", namespace)


def policy(namespace: str, name: str, deployment: str, min_records: int = 1000) -> dict[str, Any]:
    # The workspace claim does not exist: a triggered run waits in Preparing (this test is about
    # collect and trigger; test_flywheel_loop runs whole turns).
    return {"apiVersion": "acgs.io/v1alpha1", "kind": "FlywheelPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"constitutionalHash": CONSTITUTIONAL_HASH, "deploymentRef": deployment,
                     "thresholds": {"minRecords": min_records}, "intervalSeconds": 60,
                     "workspacePvc": "no-such-workspace"}}


def write_log(directory: Path) -> dict[str, int]:
    """Two closed files and one still being written; returns what a collector must report."""
    good = interactions(12, seed=7)
    wrong = dict(good[0], constitutional_hash="0000000000000000", request_id="wrong")
    invalid = dict(good[1], input={"scenario": {}}, request_id="invalid")
    dup = dict(good[2], request_id="dup", timestamp="2999-01-01T00:00:00.000+00:00")
    directory.mkdir(parents=True, exist_ok=True)
    writer = "interactions-srv-abc-20260101T000000Z"
    closed = [good[:6] + [wrong, invalid], good[6:] + [dup]]
    for seq, records in enumerate(closed, 1):
        text = "".join(json.dumps(r) + "\n" for r in records) + ('{"torn' if seq == 2 else "")
        (directory / f"{writer}-{seq:05d}.jsonl").write_text(text)
    (directory / f"{writer}-00003.jsonl").write_text("".join(json.dumps(r) + "\n" for r in interactions(5, seed=8)))
    return {"seen": 8 + 7 + 1, "usable": 12}


def test_collects_counts_into_status_and_runs_on_annotation(operator, podrunner, namespace):
    cluster = operator
    claim_dir = pvc(cluster, namespace, "interaction-logs")
    expected = write_log(claim_dir / "interactions")
    apply(cluster, {
        "apiVersion": "acgs.io/v1alpha1", "kind": "Deployment", "metadata": {"name": "srv", "namespace": namespace},
        # The ModelVersion does not exist: no server pods; the flywheel needs only the log claim.
        "spec": {"constitutionalHash": CONSTITUTIONAL_HASH, "model": {"versionRef": "absent-0-1-0"},
                 "interactionLogPvc": "interaction-logs",
                 "resources": {"nodeSelector": ON_LOCAL_NODE["nodeSelector"],
                               "tolerations": ON_LOCAL_NODE["tolerations"]}}},
        policy(namespace, "fw", "srv"), policy(namespace, "fw-orphan", "no-such-deployment"))

    status = wait_until(lambda: (fwp(cluster, namespace, "fw").get("status") or {}).get("recordsUsable") is not None
                        and fwp(cluster, namespace, "fw")["status"], 180, "the first collection")
    assert status["recordsSeen"] == expected["seen"]
    assert status["recordsUsable"] == expected["usable"]
    assert status["recordsExcluded"] == {"unparsable": 1, "missingHash": 0, "wrongHash": 1, "invalidSchema": 1,
                                         "duplicate": 1}
    local = collect(claim_dir / "interactions", CONSTITUTIONAL_HASH)
    assert status["snapshotDigest"] == local.snapshot_digest()
    assert status["phase"] == "Collecting" and "currentRun" not in status  # 12 < minRecords
    assert status["observedGeneration"] == fwp(cluster, namespace, "fw")["metadata"]["generation"]
    ready = cluster.kubectl("wait", "--for=condition=Ready", "fwp/fw", "-n", namespace, "--timeout=10s")
    assert ready.returncode == 0, ready.stderr
    printed = cluster.kubectl("get", "fwp", "fw", "-n", namespace, check=True).stdout
    assert "RECORDS" in printed and " 12 " in printed

    jobs = cluster.get_json("jobs", "-n", namespace, "-l", "acgs.io/owner-name=fw")["items"]
    assert jobs, "the collector Job (owned, kept until its TTL)"
    job = jobs[0]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "FlywheelPolicy"
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": "interaction-logs", "readOnly": True}
    pods = cluster.get_json("pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={job['metadata']['name']}")
    assert pods["items"][0]["spec"]["nodeName"] == RUNNER_NODE

    cluster.kubectl("annotate", "fwp", "fw", "-n", namespace, "acgs.io/run-now=first", check=True)
    run = wait_until(lambda: (fwp(cluster, namespace, "fw").get("status") or {}).get("currentRun"), 180,
                     "a run on the annotation")
    assert (run["trigger"], run["phase"], run["records"], run["snapshotDigest"]) == (
        "RunNow", "Preparing", expected["usable"], local.snapshot_digest())
    waiting = wait_until(lambda: "no-such-workspace" in (fwp(cluster, namespace, "fw")["status"]["currentRun"]
                                                          .get("message") or "") and fwp(cluster, namespace, "fw"),
                         60, "the run to say what it waits for")
    assert waiting["status"]["phase"] == "Evaluating"
    events = cluster.get_json("events", "-n", namespace, "--field-selector", "involvedObject.name=fw")["items"]
    assert any(e["reason"] == "RunTriggered" and run["id"] in e["message"] for e in events)

    # One run at a time: a second request is answered, not run.
    cluster.kubectl("annotate", "fwp", "fw", "-n", namespace, "--overwrite", "acgs.io/run-now=second", check=True)
    wait_until(lambda: (fwp(cluster, namespace, "fw").get("status") or {}).get("runNowHandled") == "second", 180,
               "the second run-now to be handled")
    assert fwp(cluster, namespace, "fw")["status"]["currentRun"]["id"] == run["id"]

    orphan = wait_until(lambda: (fwp(cluster, namespace, "fw-orphan").get("status") or {}).get("phase") == "Failed"
                        and fwp(cluster, namespace, "fw-orphan")["status"], 60, "the orphan policy to fail")
    assert "spec.deploymentRef='no-such-deployment'" in orphan["message"]
    stalled = next(c for c in orphan["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "DeploymentNotFound")
