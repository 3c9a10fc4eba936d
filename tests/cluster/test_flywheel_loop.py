"""One whole flywheel turn on the local control plane (issue 10's proof): real server pods (the pod
runner) of a Deployment that logs to a claim, a load script whose requests pass minRecords, a
foreign record with a wrong hash in the log, and a FlywheelPolicy whose run prepares the data with
the trainer's `acgs-data flywheel-prepare`, scores the production model and three candidates with
`acgs-train flywheel-eval` (a base model as is, the base with labelled examples in the prompt, and a
DP LoRA fine-tune trained by a child TrainingJob), decides, promotes the fine-tune's ModelVersion,
and the Deployment that follows the stage switches colors. The operator is restarted mid-run.

Lean for CI: tiny built-in base, a few optimizer steps, ~40 records. The acceptance thresholds are
set so the decision turns on cost (relativeCost × measured latency ratio), which the test controls;
accuracy and compliance are measured and reported, with low minimums (a 3-step DP fine-tune of a
tiny model is not expected to beat anything).

    flock /tmp/acgs-cluster.lock .venv/bin/python -m pytest tests/cluster/test_flywheel_loop.py -x -q
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from acgs_contract.constitution import CONSTITUTIONAL_HASH

from ..conftest import Cluster
from .conftest import ON_LOCAL_NODE, RUNNER_CPU, apply, pvc, wait_until
from .test_deployment_e2e import VENV_BIN, ActiveServiceClient, _train

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.ml]

HASH = CONSTITUTIONAL_HASH
MODEL, NAME, POLICY = "fw-cai", "fw-srv", "fw"
REQUESTS = 44
FOREIGN_HASH = "0123456789abcdef"


@pytest.fixture(scope="module")
def ns(cluster: Cluster, operator: Cluster, podrunner: Path) -> Iterator[tuple[str, Path, Path]]:
    namespace = f"t-fw-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace, check=True)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", check=True)
    artifacts = pvc(cluster, namespace, "artifacts")
    logs = pvc(cluster, namespace, "interactions")
    yield namespace, artifacts, logs
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return cluster.get_json(kind, name, "-n", namespace)


def scenarios(count: int) -> list[dict[str, Any]]:
    """Distinct constitutional_ai scenarios from the trainer's generator (distinct request content:
    the collector drops duplicates)."""
    out = Path(f"/tmp/fw-e2e-{uuid.uuid4().hex[:6]}.jsonl")
    subprocess.run([str(VENV_BIN / "acgs-data"), "generate", "--type", "constitutional_ai", "--size",
                    str(count * 3), "--seed", "11", "--out", str(out)], check=True, capture_output=True)
    seen: dict[str, dict[str, Any]] = {}
    for line in out.read_text().splitlines():
        scenario = json.loads(line)["input"]["scenario"]
        seen.setdefault(json.dumps(scenario, sort_keys=True), scenario)
    out.unlink()
    assert len(seen) >= count, f"only {len(seen)} distinct scenarios"
    return list(seen.values())[:count]


def send_load(client: ActiveServiceClient, count: int) -> int:
    """The load script: `count` distinct predict requests to the live color; returns how many got 200."""
    address = wait_until(client.refresh, 60, "the active Service's endpoints")[0]
    ok = 0
    for scenario in scenarios(count):
        body = json.dumps({"scenario": scenario, "constitutional_hash": HASH}).encode()
        request = urllib.request.Request(f"http://{address}/constitutional-ai/predict", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            ok += response.status == 200
    return ok


def plant_foreign_record(log_dir: Path) -> None:
    """A record of another constitution in a closed file of its own writer (a tampered or
    misrouted log): the collector and the prepare step must exclude it and count it."""
    served = next(p for p in sorted(log_dir.glob("interactions-*.jsonl")))
    record = json.loads(served.read_text().splitlines()[0])
    record.update(constitutional_hash=FOREIGN_HASH, request_id="foreign-1")
    record["input"] = {**record["input"], "scenario": {**record["input"]["scenario"], "risk_level": "critical"}}
    writer = "interactions-foreign-20260101T000000Z"
    (log_dir / f"{writer}-00001.jsonl").write_text(json.dumps(record) + "\n")
    (log_dir / f"{writer}-00002.jsonl").write_text("")  # its newest (open) file


def policy(namespace: str) -> dict[str, Any]:
    base = "builtin:tiny-llama"
    return {
        "apiVersion": "acgs.io/v1alpha1", "kind": "FlywheelPolicy",
        "metadata": {"name": POLICY, "namespace": namespace},
        "spec": {
            "constitutionalHash": HASH, "deploymentRef": NAME, "intervalSeconds": 3600, "autoPromote": True,
            "thresholds": {"minRecords": 30, "evalSize": 8, "valRatio": 0.1}, "maxParallel": 2, "seed": 3,
            "privacyEpsilon": 8, "recordEpsilonLimit": 8,
            "resources": {"cpu": RUNNER_CPU, "memory": "2Gi"},
            # Latency is measured on a shared machine (other Jobs, other tests): noisy by a factor of 3
            # or more. The prices leave room for that: the base as a 100× dearer hosted model and the
            # in-context prompts at 50× can never pass maxCostRatio 1; the fine-tune at 0.1× passes
            # unless it is 10× slower than production.
            "candidates": [{"name": "base", "kind": "Base", "baseModel": base, "relativeCost": 100.0},
                           {"name": "icl", "kind": "InContext", "baseModel": base, "relativeCost": 50.0,
                            "inContextExamples": 2},
                           {"name": "ft", "kind": "FineTune", "baseModel": base, "relativeCost": 0.1, "loraRank": 4,
                            "maxSteps": 3}],
            "acceptance": {"minComplianceScore": 0.0, "minAccuracyRatio": 0.01, "maxCostRatio": 1.0},
        },
    }


def scrape() -> str:
    import install  # hack/ (on sys.path through tests/conftest.py): the operator's metrics port

    with urllib.request.urlopen(f"http://127.0.0.1:{install.METRICS_PORT}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_one_turn_from_logged_interactions_to_a_promoted_fine_tune(cluster: Cluster, ns: tuple[str, Path, Path]):
    namespace, artifacts, logs = ns
    # Production: a tiny artifact trained here, verified by the operator, served for real.
    manifest = _train(artifacts / "runs/prod", seed=1)
    apply(cluster, {
        "apiVersion": "acgs.io/v1alpha1", "kind": "ModelVersion",
        "metadata": {"name": f"{MODEL}-1-0-0", "namespace": namespace,
                     "annotations": {"acgs.io/verify-scheduling": json.dumps(ON_LOCAL_NODE)}},
        "spec": {"constitutionalHash": HASH, "modelName": MODEL, "version": "1.0.0", "stage": "production",
                 "baseModel": "builtin:tiny-llama",
                 "artifact": {"uri": "pvc://artifacts/runs/prod/run/artifact", "digest": manifest["digest"]},
                 "metrics": {k: manifest["metrics"][k] for k in ("accuracy", "complianceScore", "evalLoss")}}},
        {"apiVersion": "acgs.io/v1alpha1", "kind": "Deployment", "metadata": {"name": NAME, "namespace": namespace},
         "spec": {"constitutionalHash": HASH, "model": {"selector": {"modelName": MODEL, "stage": "production"}},
                  "replicas": 1, "port": 18090, "metricsPort": 18091, "artifactPvc": "artifacts",
                  "interactionLogPvc": "interactions", "interactionLogMaxBytes": 4096,
                  "resources": {"cpu": RUNNER_CPU, "memory": "2Gi", **ON_LOCAL_NODE},
                  "strategy": {"blueGreen": {"previewReplicaCount": 1, "scaleDownDelaySeconds": 3,
                                             "postPromotionWindowSeconds": 4}},
                  "promotion": {"minComplianceScore": 0.0, "smokeRequests": 2}}})
    wait_until(lambda: get(cluster, namespace, "deployments.acgs.io", NAME).get("status", {}).get("phase")
               == "Healthy", 240, "production to go live")
    first_color = get(cluster, namespace, "deployments.acgs.io", NAME)["status"]["activeColor"]

    assert send_load(ActiveServiceClient(cluster, namespace, NAME), REQUESTS) == REQUESTS
    log_dir = logs / "interactions"
    wait_until(lambda: len(list(log_dir.glob("interactions-*.jsonl"))) >= 3, 30, "rotated log files")
    plant_foreign_record(log_dir)
    apply(cluster, policy(namespace))

    # Collect: usable records counted, the foreign one excluded by reason; the run fires on minRecords.
    def current() -> dict[str, Any]:
        return get(cluster, namespace, "flywheelpolicies.acgs.io", POLICY).get("status") or {}
    status = wait_until(lambda: (s := current()).get("lastRun") and s, 180, "the run to trigger")
    assert status["recordsUsable"] >= 30 and status["recordsExcluded"]["wrongHash"] == 1
    printed = cluster.kubectl("get", "fwp", POLICY, "-n", namespace, check=True).stdout
    assert all(col in printed for col in ("PHASE", "RECORDS", "RECOMMENDATION", "LAST RUN"))

    # The run survives an operator restart: its state is in status, its children are owned.
    wait_until(lambda: (current().get("currentRun") or {}).get("phase") == "Evaluating", 240, "the run to evaluate")
    import install
    install.start_operator(restart=True)

    status = wait_until(lambda: (s := current()).get("lastRunResult") and not s.get("currentRun") and s, 900,
                        "the run to be decided", interval=2)
    run = status["lastRunResult"]
    candidates = {c["name"]: c for c in status["candidates"]}
    assert run["phase"] == "Succeeded", json.dumps(status, indent=1)[-4000:]
    assert run["evalRecords"] == 8 and run["preparedDigest"].startswith("sha256:")
    assert set(candidates) == {"production", "base", "icl", "ft"}
    for c in candidates.values():  # all four scored for real, on the same eval set
        assert 0 <= c["accuracy"] <= 1 and 0 <= c["complianceScore"] <= 1 and c["latencyMs"] > 0, c
    assert status["liveCompliance"] is not None and status["judgedRecords"] > 0
    assert status["budget"]["maxEpsilon"] > 0
    ft = candidates["ft"]
    assert ft["state"] == "Winner" and ft["costRatio"] <= 1.0 and ft["trainingJob"] and ft["modelVersion"]
    assert run["winner"] == "ft" and run["promoted"] == ft["modelVersion"]
    assert status["recommendation"] == f"ft/{ft['modelVersion']}"
    assert abs(status["estimatedCostReduction"] - (1 - ft["costRatio"])) < 1e-3
    # Below the criteria: recorded with its reason, not promoted.
    base = candidates["base"]
    assert base["state"] == "Rejected" and any("maxCostRatio" in r for r in base["reasons"])
    assert "modelVersion" not in base

    # The fine-tune is a DP TrainingJob owned by the policy; its ModelVersion continues production's family.
    tj = get(cluster, namespace, "trainingjobs.acgs.io", ft["trainingJob"])
    assert tj["metadata"]["ownerReferences"][0]["kind"] == "FlywheelPolicy"
    assert tj["spec"]["privacy"]["enabled"] is True and tj["spec"]["privacy"]["targetEpsilon"] == 8
    mv = get(cluster, namespace, "mv", ft["modelVersion"])
    assert mv["spec"]["modelName"] == MODEL and mv["spec"]["stage"] == "production"

    # Promotion: the Deployment that follows the stage rolls the winner out and switches colors.
    dep = wait_until(lambda: (s := get(cluster, namespace, "deployments.acgs.io", NAME)["status"]).get(
        "activeModelVersion") == ft["modelVersion"] and s.get("phase") == "Healthy" and s, 300,
        "the winner to go live", interval=1)
    assert dep["activeColor"] != first_color
    assert get(cluster, namespace, "deployments.acgs.io", NAME)["metadata"]["generation"] == 1  # spec untouched

    events = cluster.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={POLICY}")["items"]
    reasons = {e["reason"] for e in events}
    assert {"RunTriggered", "RunPrepared", "CandidateRejected", "CandidateAccepted", "WinnerSelected",
            "Promoted"} <= reasons, reasons
    metrics = scrape()
    labels = f'namespace="{namespace}",policy="{POLICY}"'
    assert f'acgs_flywheel_promotions_total{{{labels},trigger="auto"}} 1.0' in metrics
    assert f'acgs_flywheel_records{{{labels},reason="wrongHash"}} 1.0' in metrics

    # Deleting the policy deletes what it owns (the workspace claim, the TrainingJob, the Jobs).
    cluster.kubectl("delete", "fwp", POLICY, "-n", namespace, check=True)
    wait_until(lambda: not cluster.get_json("trainingjobs.acgs.io", "-n", namespace)["items"], 120,
               "the owned TrainingJob to be garbage-collected", interval=1)
    wait_until(lambda: not [p for p in cluster.get_json("pvc", "-n", namespace)["items"]
                            if p["metadata"]["name"] == f"{POLICY}-workspace"
                            and not p["metadata"].get("deletionTimestamp")], 120, "the workspace claim to go")
    # The promoted ModelVersion is not the policy's: it stays, and keeps serving.
    assert get(cluster, namespace, "mv", ft["modelVersion"])["spec"]["stage"] == "production"
