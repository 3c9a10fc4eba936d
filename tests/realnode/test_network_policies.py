"""The operator's NetworkPolicies, enforced on the real node by kube-network-policies: built by the
operator's own builders, applied as the operator applies them, probed from real pods."""

from __future__ import annotations

import uuid

import pytest
from acgs_operator.api.deployment import DeploymentSpec
from acgs_operator.api.trainingjob import TrainingJobSpec
from acgs_operator.builders import deployment as serving
from acgs_operator.builders import trainingjob as training
from acgs_operator.builders.common import Owner
from acgs_operator.config import Settings

from tests.conftest import Cluster, wait_until
from tests.realnode.conftest import (
    SLEEPER,
    apply,
    http_server_pod,
    probe,
    restricted_pod,
    wait_running,
)

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]
HASH = "cdd01ef066bc6cf2"
OPERATOR_LABELS = {"app.kubernetes.io/name": "acgs-operator"}


@pytest.fixture
def operator_namespace(real_node: Cluster) -> str:
    """Stands in for acgs-system: a pod here with the operator's labels plays the operator."""
    name = f"r-op-{uuid.uuid4().hex[:6]}"
    real_node.kubectl("create", "namespace", name, check=True)
    yield name
    real_node.kubectl("delete", "namespace", name, "--wait=false")


def unowned(obj: dict) -> dict:
    """The builders point ownerReferences at the custom resource; none exists here, and the
    garbage collector would delete an object whose owner is missing."""
    obj["metadata"].pop("ownerReferences", None)
    return obj


def eventually(cluster: Cluster, ns: str, pod: str, host: str, port: int, expect: str) -> str:
    """Policies are programmed asynchronously (informers, then nftables sets): allow a few seconds."""
    return wait_until(lambda: (out := probe(cluster, ns, pod, host, port)).startswith(expect) and out,
                      timeout=30, interval=1, what=f"{pod} -> {host}:{port} to be {expect}")


def test_model_server_policy_admits_listed_clients_and_operator_only(
        real_node: Cluster, real_namespace: str, operator_namespace: str) -> None:
    ns, op_ns = real_namespace, operator_namespace
    spec = DeploymentSpec.model_validate({
        "constitutionalHash": HASH, "model": {"versionRef": "cai-1-0-0"}, "port": 8080,
        "network": {"allowedClients": [{"podSelector": {"app": "gateway"}}]}})
    owner = Owner(kind="Deployment", name="cai", namespace=ns, uid=str(uuid.uuid4()))
    apply(real_node,
          http_server_pod("server", ns, serving.server_selector("cai"), (8080,)),
          restricted_pod("gateway", ns, {"app": "gateway"}, SLEEPER),
          restricted_pod("intruder", ns, {"app": "curious"}, SLEEPER),
          restricted_pod("operator", op_ns, OPERATOR_LABELS, SLEEPER),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cai", "namespace": ns},
           "spec": {"selector": serving.server_selector("cai"), "ports": [{"port": 80, "targetPort": 8080}]}})
    ip = wait_running(real_node, ns, "server", "gateway", "intruder")["server"]
    wait_running(real_node, op_ns, "operator")
    # Without a policy the network lets everyone in: what follows is the policy's doing.
    assert probe(real_node, ns, "intruder", ip, 8080) == "ok hello from server"

    apply(real_node, unowned(serving.network_policy(owner, spec, op_ns, OPERATOR_LABELS)))
    assert eventually(real_node, ns, "intruder", ip, 8080, "blocked").startswith("blocked")
    assert probe(real_node, ns, "gateway", ip, 8080) == "ok hello from server"
    assert probe(real_node, op_ns, "operator", ip, 8080) == "ok hello from server"
    # By name: cluster DNS (CoreDNS) and the Service (kube-proxy), still behind the same policy.
    assert probe(real_node, ns, "gateway", f"cai.{ns}.svc.cluster.local", 80) == "ok hello from server"
    assert probe(real_node, ns, "intruder", f"cai.{ns}.svc.cluster.local", 80).startswith("blocked")


def test_trainer_policy_allows_dns_and_progress_port_only(
        real_node: Cluster, real_namespace: str, operator_namespace: str) -> None:
    ns, op_ns = real_namespace, operator_namespace
    settings = Settings(operator_namespace=op_ns, progress_port=8083)
    spec = TrainingJobSpec.model_validate({
        "constitutionalHash": HASH, "modelName": "constitutional-ai",
        "data": {"generate": {"type": "constitutional_ai", "size": 40, "seed": 7}},
        "training": {"maxSteps": 20, "batchSize": 8, "checkpointEvery": 5}, "output": {"pvc": "artifacts"}})
    owner = Owner(kind="TrainingJob", name="job-a", namespace=ns, uid=str(uuid.uuid4()))
    apply(real_node,
          restricted_pod("trainer", ns, {training.LABEL_TRAINING_JOB: "job-a"}, SLEEPER),
          http_server_pod("neighbour", ns, {"app": "neighbour"}, (8080,)),
          http_server_pod("operator", op_ns, OPERATOR_LABELS, (8083, 8080)))
    ips = wait_running(real_node, ns, "trainer", "neighbour")
    operator_ip = wait_running(real_node, op_ns, "operator")["operator"]
    assert probe(real_node, ns, "trainer", ips["neighbour"], 8080) == "ok hello from neighbour"

    apply(real_node, unowned(training.build_network_policy(spec, owner, settings)))
    eventually(real_node, ns, "trainer", ips["neighbour"], 8080, "blocked")
    assert probe(real_node, ns, "trainer", operator_ip, 8083) == "ok hello from operator"
    assert probe(real_node, ns, "trainer", operator_ip, 8080).startswith("blocked")
    # Cluster DNS (the CoreDNS pod, through the kube-dns Service) stays reachable.
    dns_ip = real_node.get_json("service", "-n", "kube-system", "kube-dns")["spec"]["clusterIP"]
    dns = probe(real_node, ns, "trainer", "kube-dns.kube-system.svc.cluster.local", 0, udp_dns=True)
    assert dns == f"ok {dns_ip}", dns
    # Ingress: nothing may connect to a trainer.
    apply(real_node, http_server_pod("trainer-listening", ns, {training.LABEL_TRAINING_JOB: "job-a"}, (9000,)))
    listening_ip = wait_running(real_node, ns, "trainer-listening")["trainer-listening"]
    eventually(real_node, ns, "neighbour", listening_ip, 9000, "blocked")
