"""The product end to end on the real node, every pod a container from the product's images under
the restricted profile (runc enforces UID 65532, the read-only root and the dropped capabilities)
and every NetworkPolicy enforced by kube-network-policies: a TrainingJob trains in the trainer
image, its ModelVersion is verified by a Job in the trainer image, an acgs.io Deployment serves it
from the server image, and a prediction is answered through the Service, by name, to the client
the Deployment's policy lists, while a pod it does not list is refused.

The operator runs on the host, as in the default suite: its promotion checks and the trainer's
progress reports are node traffic, which kube-network-policies does not judge (see README).
Needs `make images`, then `make test-realnode-e2e` (the trainer and server images imported)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from acgs_contract.constitution import CONSTITUTIONAL_HASH
from acgs_operator.builders import deployment as serving

from tests.cluster.conftest import ON_LOCAL_NODE, RUNNER_CPU, pvc
from tests.conftest import Cluster, wait_until
from tests.realnode.conftest import NODE, SLEEPER, apply, restricted_pod, wait_running

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow]
IMAGES = ("ghcr.io/acgs/trainer:0.1.0", "ghcr.io/acgs/server:0.1.0")
SCENARIO = {"action": "model_deployment", "actor_role": "admin", "data_sensitivity": "internal", "consent": True,
            "risk_level": "low", "audit_logging": True, "human_oversight": True, "explanation_provided": True,
            "affects_protected_group": False, "bias_tested": True}
PREDICT = """
import json, sys, urllib.request
body = json.dumps({{"scenario": {scenario}, "constitutional_hash": "{hash}"}}).encode()
request = urllib.request.Request("http://{address}/constitutional-ai/predict", data=body, method="POST",
                                 headers={{"Content-Type": "application/json"}})
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        print("ok", response.status, json.loads(response.read())["digest"])
except Exception as e:
    print("blocked", type(e).__name__, e)
"""


@pytest.fixture
def product_images(real_node: Cluster) -> None:
    names = {n for i in real_node.get_json("node", NODE)["status"].get("images", []) for n in i.get("names", [])}
    missing = [image for image in IMAGES if not any(n.endswith(image) for n in names)]
    if missing:
        pytest.skip(f"{missing} not in the node's containerd: `make images`, then `make test-realnode-e2e`")


def predict_from(cluster: Cluster, namespace: str, pod: str, address: str) -> str:
    script = PREDICT.format(scenario=json.dumps(SCENARIO).replace("true", "True").replace("false", "False"),
                            hash=CONSTITUTIONAL_HASH, address=address)
    proc = cluster.kubectl("exec", "-n", namespace, pod, "--", "python3", "-c", script, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def on_real_node(cluster: Cluster, namespace: str, selector: str) -> list[dict]:
    pods = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    assert pods and all(p["spec"]["nodeName"] == NODE for p in pods), [p["spec"].get("nodeName") for p in pods]
    return pods


def test_trained_model_is_verified_and_served_to_the_allowed_client_only(
        operator: Cluster, product_images: None, real_namespace: str) -> None:
    cluster, ns = operator, real_namespace
    artifacts: Path = pvc(cluster, ns, "artifacts")
    apply(cluster, {
        "apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "cai", "namespace": ns},
        "spec": {"constitutionalHash": CONSTITUTIONAL_HASH, "modelName": "constitutional-ai",
                 "data": {"generate": {"type": "constitutional_ai", "size": 60}},
                 "training": {"maxSteps": 10, "batchSize": 8, "checkpointEvery": 5},
                 "privacy": {"enabled": True, "targetEpsilon": 8},
                 "resources": {"cpu": RUNNER_CPU, "memory": "2Gi", "gpus": 1, **ON_LOCAL_NODE},
                 "output": {"pvc": "artifacts"}, "backoffLimit": 0}})
    done = wait_until(lambda: (t := cluster.get_json("tj", "cai", "-n", ns)).get("status", {}).get("phase")
                      in ("Succeeded", "Failed") and t, 600, "the training run", interval=2)
    logs = cluster.kubectl("logs", "-n", ns, "job/cai-train", "--tail=30").stdout
    assert done["status"]["phase"] == "Succeeded", (done["status"], logs)
    trainer = on_real_node(cluster, ns, "job-name=cai-train")[0]
    status = trainer["status"]["containerStatuses"][0]
    assert trainer["spec"]["containers"][0]["image"] == IMAGES[0] and status["image"].endswith(IMAGES[0])
    # Progress reached the operator from inside the container (the trainer's own reports).
    assert done["status"]["progress"]["percent"] == 100 and 0 < done["status"]["progress"]["epsilon"] <= 8
    # The trainer wrote as UID 65532 onto the real node's hostPath volume.
    name = done["status"]["modelVersion"]
    run_dir = next((artifacts / "trainingjobs").glob("cai-*"))
    assert (run_dir / "artifact/manifest.json").stat().st_uid == 65532

    mv = wait_until(lambda: (m := cluster.get_json("mv", name, "-n", ns)).get("status", {}).get("phase")
                    in ("Ready", "Invalid") and m, 300, "the ModelVersion verified", interval=2)
    assert mv["status"]["phase"] == "Ready", mv["status"]
    assert mv["status"]["verifiedDigest"] == mv["spec"]["artifact"]["digest"] == done["status"]["artifactDigest"]

    apply(cluster, {
        "apiVersion": "acgs.io/v1alpha1", "kind": "Deployment", "metadata": {"name": "cai", "namespace": ns},
        "spec": {"constitutionalHash": CONSTITUTIONAL_HASH, "model": {"versionRef": name}, "replicas": 1,
                 "port": 8080, "artifactPvc": "artifacts",
                 "resources": {"cpu": RUNNER_CPU, "memory": "2Gi", **ON_LOCAL_NODE},
                 "strategy": {"blueGreen": {"previewReplicaCount": 1, "scaleDownDelaySeconds": 3}},
                 # The gates are tested elsewhere; here: the path through the real node's network.
                 "promotion": {"minComplianceScore": 0.0, "smokeRequests": 2},
                 "network": {"allowedClients": [{"podSelector": {"app": "gateway"}}]}}})
    apply(cluster, restricted_pod("gateway", ns, {"app": "gateway"}, SLEEPER),
          restricted_pod("intruder", ns, {"app": "curious"}, SLEEPER))
    wait_running(cluster, ns, "gateway", "intruder")
    live = wait_until(lambda: (d := cluster.get_json("deployments.acgs.io", "cai", "-n", ns)).get("status", {})
                      .get("phase") in ("Healthy", "Degraded", "Failed") and d, 300, "the Deployment live", interval=2)
    assert live["status"]["phase"] == "Healthy", live["status"]
    servers = on_real_node(cluster, ns, ",".join(f"{k}={v}" for k, v in serving.server_selector("cai").items()))
    assert all(c["image"] == IMAGES[1] for p in servers for c in p["spec"]["containers"])

    # Through the active Service by name: cluster DNS (CoreDNS), kube-proxy, the server's policy.
    address = serving.service_address(serving.active_service_name("cai"), ns)
    answer = wait_until(lambda: (out := predict_from(cluster, ns, "gateway", address)).startswith("ok") and out,
                        30, "the allowed client's prediction", interval=1)
    assert answer == f"ok 200 {mv['spec']['artifact']['digest']}", answer
    refused = predict_from(cluster, ns, "intruder", address)
    assert refused.startswith("blocked"), refused
