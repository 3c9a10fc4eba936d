"""Deployment (acgs.io) end to end on the local control plane: the operator runs as a real process,
the model servers run for real on acgs-local-0 (hack/podrunner/) from artifacts the trainer just
built, the ModelVersions are verified by the operator's own verification Jobs, and the checks and
the client traffic go to the pods' IPs taken from the Services' EndpointSlices (no kube-proxy here).
`make test-realnode-e2e` runs the same tests with the servers as containers from the server image on
the real node (the artifacts are still trained on the host, by the checkout's trainer CLI).

One module, one namespace, one Deployment that follows `stage: production`; the tests run in order
and each moves it one step (2 shared cores: every server start costs ~10 s).

    .venv/bin/python -m pytest -m cluster tests/cluster/test_deployment_e2e.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..conftest import ROOT, Cluster, localcluster
from .conftest import ON_LOCAL_NODE, RUNNER_CPU, apply, pvc, wait_until
from acgs_contract.constitution import CONSTITUTIONAL_HASH

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.ml]

HASH = CONSTITUTIONAL_HASH
MODEL = "e2e-cai"
NAME = "cai"
PORT = 18080
VENV_BIN = ROOT / ".venv" / "bin"
SCENARIO = {"action": "model_deployment", "actor_role": "admin", "data_sensitivity": "internal", "consent": True,
            "risk_level": "low", "audit_logging": True, "human_oversight": True, "explanation_provided": True,
            "affects_protected_group": False, "bias_tested": True}


def owned_by_pods(path: Path) -> None:
    """Files made here, as root, handed to the UID the product's pods run as. The trainer writes
    some files 0600 (the adapter), readable only by the UID that trained: on the real node the
    verification Jobs and servers run as 65532, as the trainer image does. The pod runner runs
    everything as root and needs nothing."""
    if localcluster.REAL_NODE:
        for item in (path, *path.rglob("*")):
            os.chown(item, 65532, 65532)


def _train(out: Path, seed: int, *extra: str) -> dict[str, Any]:
    """A real, tiny artifact from the trainer's CLI (``extra``: more trainer flags); returns its
    manifest."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data.jsonl"
    for args in ([str(VENV_BIN / "acgs-data"), "generate", "--type", "all", "--size", "30", "--seed", str(seed),
                  "--out", str(data)],
                 [str(VENV_BIN / "acgs-train"), "--data", str(data), "--output", str(out / "run"), "--no-dp",
                  "--base-model", "builtin:tiny-llama", "--max-steps", "2", "--seed", str(seed), *extra]):
        proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{args[0]} failed: {proc.stderr[-2000:]}"
    owned_by_pods(out)
    return json.loads((out / "run/artifact/manifest.json").read_text())


class Env:
    def __init__(self, cluster: Cluster, namespace: str, volume: Path) -> None:
        self.cluster, self.namespace, self.volume = cluster, namespace, volume
        self.manifests: dict[str, dict[str, Any]] = {}

    def model_version(self, version: str, run: str, stage: str) -> str:
        """A ModelVersion for the artifact under runs/<run>, verified by the operator's Job."""
        manifest = json.loads((self.volume / "runs" / run / "run/artifact/manifest.json").read_text())
        metrics = manifest["metrics"]
        name = f"{MODEL}-{version.replace('.', '-')}"
        apply(self.cluster, {
            "apiVersion": "acgs.io/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": name, "namespace": self.namespace,
                         "annotations": {"acgs.io/verify-scheduling": json.dumps(ON_LOCAL_NODE)}},
            "spec": {"constitutionalHash": HASH, "modelName": MODEL, "version": version, "stage": stage,
                     "baseModel": "builtin:tiny-llama",
                     "artifact": {"uri": f"pvc://artifacts/runs/{run}/run/artifact", "digest": manifest["digest"]},
                     "metrics": {"accuracy": metrics["accuracy"], "complianceScore": metrics["complianceScore"],
                                 "evalLoss": metrics["evalLoss"]}}})
        wait_until(lambda: self.get("mv", name).get("status", {}).get("phase") == "Ready", 120,
                   f"ModelVersion {name} to be verified")
        self.manifests[name] = manifest
        return name

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.cluster.get_json(kind, name, "-n", self.namespace)

    def status(self, name: str = NAME) -> dict[str, Any]:
        return self.get("deployments.acgs.io", name).get("status") or {}

    def wait_status(self, what: str, predicate: Any, timeout: float = 150, name: str = NAME) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            status = self.status(name)
            return status if predicate(status) else None
        try:
            return wait_until(check, timeout, what, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{what}; status: {json.dumps(self.status(name), indent=1)[-3000:]}"
                                 f"{self.node_flaps()}") from None

    def node_flaps(self) -> str:
        """Pods the node lifecycle controller marked NotReady (their node missed its heartbeat): an
        environment fault, named so that a failure caused by it says so."""
        events = self.cluster.get_json("events", "-n", self.namespace, "--field-selector", "reason=NodeNotReady")
        pods = sorted({e["involvedObject"]["name"] for e in events.get("items", [])})
        return (f"\nNOTE: the node went NotReady during the test and these pods were marked NotReady: {pods}"
                if pods else "")

    def condition(self, status: dict[str, Any], type_: str) -> dict[str, Any]:
        return next((c for c in status.get("conditions", []) if c["type"] == type_), {})

    def replicas(self, color: str) -> int:
        return int(self.get("deployments.apps", f"{NAME}-{color}")["spec"].get("replicas", 0))

    def kubectl(self, *args: str) -> None:
        self.cluster.kubectl(*args, "-n", self.namespace, check=True)


class ActiveServiceClient:
    """A client the way a mesh or kube-proxy would route: to the ready addresses of the active
    Service's EndpointSlices, refreshed twice a second (no kube-proxy runs here). An empty slice
    (the endpoint controller rewriting it) keeps the last known addresses."""

    def __init__(self, cluster: Cluster, namespace: str, service: str = NAME) -> None:
        from kubernetes import client, config

        self.api = client.DiscoveryV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
        self.namespace, self.service = namespace, service
        self.addresses: list[str] = []
        self.results: list[tuple[int, str]] = []  # (HTTP status or 0, digest or error)
        self.stop = threading.Event()

    def refresh(self) -> list[str]:
        slices = self.api.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={self.service}").items
        found = [f"{address}:{port.port}" for s in slices for e in (s.endpoints or [])
                 if e.conditions and e.conditions.ready for address in e.addresses for port in (s.ports or [])]
        if found:
            self.addresses = sorted(found)
        return self.addresses

    def predict(self, address: str) -> tuple[int, str]:
        body = json.dumps({"scenario": SCENARIO, "constitutional_hash": HASH}).encode()
        request = urllib.request.Request(f"http://{address}/constitutional-ai/predict", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read())["digest"]
        except Exception as error:  # noqa: BLE001 - every failure is counted, none retried
            return 0, repr(error)

    def run(self) -> None:
        last, index = 0.0, 0
        while not self.stop.is_set():
            if time.monotonic() - last > 0.5:
                self.refresh()
                last = time.monotonic()
            if not self.addresses:
                time.sleep(0.1)
                continue
            index += 1
            self.results.append(self.predict(self.addresses[index % len(self.addresses)]))


@pytest.fixture(scope="module")
def env(cluster: Cluster, operator: Cluster, podrunner: Path) -> Iterator[Env]:
    import uuid

    namespace = f"t-dep-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace, check=True)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", check=True)
    volume = pvc(cluster, namespace, "artifacts")
    # Different data seeds: different adapters, different digests.
    _train(volume / "runs/a", seed=1)
    _train(volume / "runs/b", seed=2)
    # A model wrecked by a far too high learning rate: its measured compliance is ~0 (the
    # pre-trained base alone scores ~1), so the default gate has something real to refuse.
    _train(volume / "runs/wrecked", 3, "--lr", "1", "--lr-schedule", "constant", "--max-steps", "4")
    yield Env(cluster, namespace, volume)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    cluster.kubectl("delete", "pv", "-l", f"e2e={namespace}", "--wait=false")


def deployment(name: str = NAME, **strategy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "acgs.io/v1alpha1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "constitutionalHash": HASH,
            "model": {"selector": {"modelName": MODEL, "stage": "production"}},
            "replicas": 1, "port": PORT, "artifactPvc": "artifacts",
            "resources": {"cpu": RUNNER_CPU, "memory": "2Gi", **ON_LOCAL_NODE},
            "strategy": {"blueGreen": {"previewReplicaCount": 1, "scaleDownDelaySeconds": 3,
                                       "postPromotionWindowSeconds": 4, **strategy}},
            # The gate is off here (these tests are about the rollout, not the model); the last
            # test shows the default 0.95 refusing a wrecked model.
            "promotion": {"minComplianceScore": 0.0, "smokeRequests": 2},
        },
    }


def test_first_version_goes_live_and_answers(env: Env) -> None:
    v1 = env.model_version("1.0.0", "a", "production")
    apply(env.cluster, {**deployment(), "metadata": {"name": NAME, "namespace": env.namespace}})
    status = env.wait_status("v1 to go live", lambda s: s.get("phase") == "Healthy")
    assert (status["activeColor"], status["activeModelVersion"]) == ("blue", v1)
    assert env.condition(status, "Available")["status"] == "True"
    assert status["activeService"] == f"{NAME}.{env.namespace}.svc:80"
    client = ActiveServiceClient(env.cluster, env.namespace)
    addresses = wait_until(client.refresh, 30, "the active Service's endpoints")
    code, digest = client.predict(addresses[0])
    assert (code, digest) == (200, env.manifests[v1]["digest"])
    policy = env.get("networkpolicy", f"{NAME}-server")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]


def test_promotion_by_stage_switches_colors_with_zero_failed_requests(env: Env) -> None:
    v2 = env.model_version("2.0.0", "b", "staging")
    client = ActiveServiceClient(env.cluster, env.namespace)
    wait_until(client.refresh, 30, "endpoints")
    worker = threading.Thread(target=client.run, daemon=True)
    worker.start()
    try:
        # Promote the ModelVersion, not the Deployment: its Git-owned spec stays as it is.
        env.kubectl("patch", "mv", v2, "--type=merge", "-p", '{"spec":{"stage":"production"}}')
        env.wait_status("v2 to go live", lambda s: s.get("activeModelVersion") == v2 and s.get("phase") == "Healthy")
        wait_until(lambda: env.replicas("blue") == 0, 60, "the old color to scale down")
        time.sleep(2)  # traffic after the scale-down, too
    finally:
        client.stop.set()
        worker.join(30)
    status = env.status()
    assert status["activeColor"] == "green"
    assert [h["action"] for h in status["history"]][-2:] == ["Promoted", "Promoted"]
    failures = [r for r in client.results if r[0] != 200]
    digests = {r[1] for r in client.results if r[0] == 200}
    assert not failures, f"{len(failures)} of {len(client.results)} requests failed: {failures[:3]}"
    assert env.manifests[v2]["digest"] in digests and len(client.results) >= 20
    assert env.get("deployments.acgs.io", NAME)["metadata"]["generation"] == 1  # spec never touched


def test_kubectl_wait_for_ready_after_a_stage_patch(env: Env) -> None:
    """kstatus conventions: the promoted ModelVersion (generation 2 after its stage patch) and the
    Deployment serving it are Ready for `kubectl wait` - no custom script, no stale observedGeneration."""
    v2 = env.status()["activeModelVersion"]
    mv = env.get("mv", v2)
    assert mv["metadata"]["generation"] == 2 and mv["spec"]["stage"] == "production"
    for resource in (f"mv/{v2}", f"deployments.acgs.io/{NAME}"):
        done = env.cluster.kubectl("wait", "--for=condition=Ready", resource, "-n", env.namespace, "--timeout=30s")
        assert done.returncode == 0, f"{resource}: {done.stderr}"
    for obj in (env.get("mv", v2), env.get("deployments.acgs.io", NAME)):
        status, generation = obj["status"], obj["metadata"]["generation"]
        assert status["observedGeneration"] == generation
        kstatus = {c["type"]: c for c in status["conditions"] if c["type"] in ("Ready", "Reconciling", "Stalled")}
        assert {t: c["status"] for t, c in kstatus.items()} == {"Ready": "True", "Reconciling": "False",
                                                               "Stalled": "False"}
        assert {c["observedGeneration"] for c in status["conditions"]} == {generation}


def kstatus_check() -> Path | None:
    """hack/kstatus-check as hack/build-kstatus.sh builds it (`make kstatus`), or $ACGS_KSTATUS_CHECK."""
    if os.environ.get("ACGS_KSTATUS_CHECK"):
        return Path(os.environ["ACGS_KSTATUS_CHECK"])
    version = re.search(r'CLI_UTILS_VERSION:-(v[0-9.]+)', (ROOT / "hack/build-kstatus.sh").read_text())
    assert version, "hack/build-kstatus.sh names no cli-utils version"
    cache = Path(os.environ.get("ACGS_CACHE", Path.home() / ".cache/acgs"))
    path = cache / "bin" / f"kstatus-cli-utils-{version.group(1)}" / "kstatus-check"
    return path if path.exists() else None


def kstatus(env: Env, *resources: str) -> dict[str, str]:
    """What sigs.k8s.io/cli-utils/pkg/kstatus computes for the live objects: {name: status}."""
    binary = kstatus_check()
    if binary is None:
        pytest.skip("hack/kstatus-check is not built (`make kstatus` builds it from sigs.k8s.io/cli-utils)")
    objects = env.cluster.kubectl("get", *resources, "-n", env.namespace, "-o", "json", check=True).stdout
    out = subprocess.run([str(binary)], input=objects, text=True, capture_output=True, timeout=30, check=True)
    verdicts = [json.loads(line) for line in out.stdout.splitlines()]
    return {f"{v['kind']}/{v['name']}": f"{v['status']}: {v['message']}" for v in verdicts}


def test_the_kstatus_library_sees_the_promoted_version_current(env: Env) -> None:
    v2 = env.status()["activeModelVersion"]
    verdicts = kstatus(env, f"mv/{v2}", f"deployments.acgs.io/{NAME}")
    assert len(verdicts) == 2 and all(v.startswith("Current:") for v in verdicts.values()), verdicts


def test_corrupted_artifact_is_blocked_while_the_live_color_serves(env: Env) -> None:
    shutil.copytree(env.volume / "runs/a", env.volume / "runs/c")
    owned_by_pods(env.volume / "runs/c")
    v3 = env.model_version("3.0.0", "c", "staging")  # verified while intact...
    adapter = next((env.volume / "runs/c/run/artifact/adapter").glob("*.safetensors"))
    adapter.write_bytes(adapter.read_bytes()[:-16] + b"\0" * 16)  # ...then the volume rots
    env.kubectl("patch", "mv", v3, "--type=merge", "-p", '{"spec":{"stage":"production"}}')
    status = env.wait_status("v3 to be blocked", lambda s: env.condition(s, "PromotionBlocked").get("status") == "True")
    blocked = env.condition(status, "PromotionBlocked")
    assert blocked["reason"] in ("FileDigestMismatch", "ArtifactVerificationFailed", "DigestMismatch",
                               "ModelVersionInvalid"), blocked
    assert v3 in blocked["message"] and status["phase"] == "Degraded"
    assert status["activeModelVersion"] != v3 and status["history"][-1]["action"] == "Blocked"
    assert env.condition(status, "Available")["status"] == "True"
    client = ActiveServiceClient(env.cluster, env.namespace)
    assert client.predict(client.refresh()[0])[0] == 200
    wait_until(lambda: env.replicas("blue") == 0, 30, "the failed preview to scale down")
    # A permanent failure (only a new version or acgs.io/retry moves it on): Stalled, as kstatus reads it.
    stalled = env.cluster.kubectl("wait", "--for=condition=Stalled", f"deployments.acgs.io/{NAME}", "-n",
                                  env.namespace, "--timeout=30s")
    assert stalled.returncode == 0, stalled.stderr
    assert env.condition(env.status(), "Ready")["status"] == "False"


def test_the_kstatus_library_sees_the_blocked_rollout_failed(env: Env) -> None:
    verdicts = kstatus(env, f"deployments.acgs.io/{NAME}")
    assert verdicts[f"Deployment/{NAME}"].startswith("Failed:"), verdicts


def test_failing_post_promotion_check_rolls_back_by_itself(env: Env) -> None:
    live = env.status()["activeModelVersion"]
    env.kubectl("patch", "deployments.acgs.io", NAME, "--type=merge", "-p",
                json.dumps({"spec": {"strategy": {"blueGreen": {"postPromotionWindowSeconds": 40}}}}))
    shutil.copytree(env.volume / "runs/b", env.volume / "runs/d")
    owned_by_pods(env.volume / "runs/d")
    v4 = env.model_version("4.0.0", "d", "production")
    env.wait_status("v4 to be promoted", lambda s: s.get("activeModelVersion") == v4, timeout=150)
    # The new active pod dies inside the post-promotion window.
    env.kubectl("delete", "pod", "-l", "acgs.io/color=blue", "--wait=false")
    status = env.wait_status("the automatic rollback", lambda s: s.get("activeModelVersion") == live, timeout=60)
    assert status["activeColor"] == "green" and status["phase"] == "Degraded"
    assert status["history"][-1]["action"] == "RolledBack" and status["history"][-1]["modelVersion"] == v4
    blocked = env.condition(status, "PromotionBlocked")
    assert blocked["status"] == "True" and blocked["reason"] == "PostPromotionCheckFailed"
    assert "rolled back" in blocked["message"]
    # ... and the operator's /metrics counts it, as AcgsAutomaticRollback (manifests/monitoring) expects.
    import install  # hack/ (on sys.path through tests/conftest.py): the operator's metrics port

    with urllib.request.urlopen(f"http://127.0.0.1:{install.METRICS_PORT}/metrics", timeout=5) as resp:
        scraped = resp.read().decode()
    series = f'acgs_deployment_rollbacks_total{{deployment="{NAME}",namespace="{env.namespace}",trigger="automatic"}}'
    assert f"{series} 1.0" in scraped, [line for line in scraped.splitlines() if "rollbacks" in line]


def test_manual_promote_and_undo_through_annotations(env: Env) -> None:
    live = env.status()["activeModelVersion"]
    env.kubectl("patch", "deployments.acgs.io", NAME, "--type=merge", "-p", json.dumps(
        {"spec": {"strategy": {"blueGreen": {"autoPromotionEnabled": False, "postPromotionWindowSeconds": 2}}}}))
    env.kubectl("annotate", "deployments.acgs.io", NAME, "acgs.io/retry=true")
    status = env.wait_status("the retried preview to pause", lambda s: s.get("phase") == "Paused")
    assert env.condition(status, "Progressing")["reason"] == "AwaitingPromotion"
    assert "acgs.io/retry" not in (env.get("deployments.acgs.io", NAME)["metadata"].get("annotations") or {})
    env.kubectl("annotate", "deployments.acgs.io", NAME, "acgs.io/promote=true")
    preview = status["previewModelVersion"]
    promoted = env.wait_status("the manual promotion",
                               lambda s: s.get("activeModelVersion") == preview and s.get("phase") == "Healthy")
    assert promoted["activeColor"] == "blue"
    env.kubectl("annotate", "deployments.acgs.io", NAME, "acgs.io/undo=true")
    undone = env.wait_status("the undo", lambda s: s.get("activeModelVersion") == live and s.get("phase") == "Degraded"
                             and s.get("rollout", {}).get("postChecksDone"))
    assert undone["history"][-1]["action"] == "Promoted" and undone["history"][-2]["action"] == "Undone"
    assert env.condition(undone, "PromotionBlocked")["reason"] == "Undone"


def test_metrics_below_the_default_gate_never_start_a_pod(env: Env) -> None:
    wrecked = env.model_version("0.0.1", "wrecked", "candidate")
    assert env.get("mv", wrecked)["status"]["verifiedMetrics"]["complianceScore"] < 0.95
    spec = deployment("gated")
    spec["spec"]["model"] = {"versionRef": wrecked}
    spec["spec"].pop("promotion")  # default minComplianceScore 0.95
    apply(env.cluster, {**spec, "metadata": {"name": "gated", "namespace": env.namespace}})
    status = env.wait_status("the gate to block",
                             lambda s: env.condition(s, "PromotionBlocked").get("status") == "True",
                             timeout=60, name="gated")
    blocked = env.condition(status, "PromotionBlocked")
    assert blocked["reason"] == "GatesNotMet" and "minComplianceScore 0.95" in blocked["message"]
    assert status.get("activeColor") is None and env.condition(status, "Available")["status"] == "False"
    pods = env.cluster.get_json("pods", "-n", env.namespace, "-l", "acgs.io/owner-name=gated")["items"]
    assert not [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def test_autoscaler_and_disruption_budget_follow_the_active_color(env: Env) -> None:
    """spec.autoscaling → an autoscaling/v2 HPA on the ACTIVE color's apps/v1 Deployment, retargeted
    by the switch (with the PDB). The controller-manager's HPA controller runs here and takes the
    HPA up, but it cannot scale on CPU: this control plane has no metrics-server (the Metrics API,
    metrics.k8s.io, is not served; kwok and pod-runner pods report no usage), so the controller
    reports ScalingActive=False/FailedGetResourceMetric - the test checks for exactly that."""
    v1, v2 = f"{MODEL}-1-0-0", f"{MODEL}-2-0-0"
    spec = deployment("auto")
    spec["spec"]["model"] = {"versionRef": v2}
    spec["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3, "target": 80}
    apply(env.cluster, {**spec, "metadata": {"name": "auto", "namespace": env.namespace}})
    live = env.wait_status("auto to go live", lambda s: s.get("phase") == "Healthy", name="auto")
    first = live["activeColor"]

    def targets() -> tuple[str, str]:
        hpa = env.get("hpa", "auto-server")
        pdb = env.get("pdb", "auto-server")
        return hpa["spec"]["scaleTargetRef"]["name"], pdb["spec"]["selector"]["matchLabels"]["acgs.io/color"]

    assert targets() == (f"auto-{first}", first)
    assert env.get("deployment.apps", f"auto-{first}")["spec"]["replicas"] == 1  # minReplicas
    env.kubectl("patch", "deployments.acgs.io", "auto", "--type=merge", "-p",
                json.dumps({"spec": {"model": {"versionRef": v1}}}))
    switched = env.wait_status("the switch", lambda s: s.get("activeModelVersion") == v1
                               and s.get("phase") == "Healthy", name="auto")
    second = switched["activeColor"]
    assert second != first
    assert wait_until(lambda: targets() == (f"auto-{second}", second) or None, 30, "the HPA to follow the switch")
    # The HPA controller took it up, and says why it cannot act on CPU here (no Metrics API).
    hpa = wait_until(lambda: (h := env.get("hpa", "auto-server")).get("status", {}).get("conditions") and h, 60,
                     "the HPA controller to report")
    conditions = {c["type"]: c for c in hpa["status"]["conditions"]}
    assert conditions["AbleToScale"]["status"] == "True"
    assert conditions["ScalingActive"]["status"] == "False"
    assert conditions["ScalingActive"]["reason"] == "FailedGetResourceMetric"
    # Autoscaling removed: the HPA goes, spec.replicas rules again.
    env.kubectl("patch", "deployments.acgs.io", "auto", "--type=json",
                "-p", '[{"op":"remove","path":"/spec/autoscaling"}]')
    wait_until(lambda: env.cluster.kubectl("get", "hpa", "auto-server", "-n", env.namespace).returncode != 0, 30,
               "the HPA to be removed")
