"""Pods that really run: Jobs and Deployments bound to acgs-local-0 are run as local processes by
hack/podrunner/, and the real Job, Deployment and EndpointSlice controllers take it from there."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest

from ..conftest import Cluster, localcluster
from .conftest import apply, local_pod_spec, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.skipif(
    localcluster.REAL_NODE, reason="the pod runner's own tests: with the real node (ACGS_REAL_NODE=1) none runs")]


def job(namespace: str, name: str, pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"backoffLimit": 0, **spec, "template": {"spec": local_pod_spec(pod_spec)}}}


def job_condition(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    conditions = cluster.get_json("-n", namespace, "job", name).get("status", {}).get("conditions") or []
    return next((c for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None)


def pods_of(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    return cluster.get_json("-n", namespace, "pods", "-l", selector)["items"]


def answers(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


def test_job_writes_to_its_pvc_and_reports_a_termination_message(cluster, namespace, podrunner):
    # No provisioner here: a PV pre-bound to the claim lets the scheduler place the pod; the runner
    # backs the claim with one host directory per claim, which outlives the pod.
    pv = f"{namespace}-model"
    apply(cluster,
          {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
           "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                    "hostPath": {"path": f"/tmp/{pv}"}, "claimRef": {"namespace": namespace, "name": "model"}}},
          {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "model", "namespace": namespace},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}}}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
           "data": {"constitution.txt": "be helpful\n"}})
    script = ("import os, sys; open('/out/run/result.txt', 'w').write(sys.argv[1]); "
              "open('/out/run/constitution.txt', 'w').write(open('/etc/acgs/constitution.txt').read()); "
              "open('/dev/termination-log', 'w').write('trained on ' + os.environ['POD_NAME'])")
    try:
        apply(cluster, job(namespace, "train", {
            "restartPolicy": "Never",
            "volumes": [{"name": "model", "persistentVolumeClaim": {"claimName": "model"}},
                        {"name": "settings", "configMap": {"name": "settings"}}],
            "containers": [{
                "name": "trainer", "command": ["python", "-c", script], "args": ["$(RUN_ID)-$$(kept)-$(UNSET)"],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "RUN_ID", "value": "run-$(POD_NAME)"}],
                "volumeMounts": [{"name": "model", "mountPath": "/out/run"},
                                 {"name": "settings", "mountPath": "/etc/acgs", "readOnly": True}]}]}))
        done = wait_until(lambda: job_condition(cluster, namespace, "train"), 40, "the Job to finish")
        assert done["type"] == "Complete", done
        pod = pods_of(cluster, namespace, "job-name=train")[0]
        name = pod["metadata"]["name"]
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
        assert terminated["message"] == f"trained on {name}"
        volume = podrunner / "volumes" / "pvc" / namespace / "model"
        assert (volume / "result.txt").read_text() == f"run-{name}-$(kept)-$(UNSET)"
        assert (volume / "constitution.txt").read_text() == "be helpful\n"
    finally:
        cluster.kubectl("delete", "pv", pv, "--wait=false")


def test_exit_code_matched_by_pod_failure_policy_fails_the_job(cluster, namespace, podrunner):
    apply(cluster, job(namespace, "bad-config", {
        "restartPolicy": "Never",
        "containers": [{"name": "trainer", "command": ["python", "-c", "raise SystemExit(3)"]}]},
        podFailurePolicy={"rules": [{"action": "FailJob",
                                     "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [3]}}]}))
    done = wait_until(lambda: job_condition(cluster, namespace, "bad-config"), 40, "the Job to fail")
    assert (done["type"], done["reason"]) == ("Failed", "PodFailurePolicy"), done
    pod = pods_of(cluster, namespace, "job-name=bad-config")[0]
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_deployment_serves_through_its_endpointslice_and_stops_when_deleted(cluster, namespace, podrunner):
    labels = {"app": "web"}
    container = {
        "name": "web", "command": ["python", "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }
    apply(cluster,
          {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
           "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
               "metadata": {"labels": labels},
               "spec": local_pod_spec({"terminationGracePeriodSeconds": 5, "containers": [container]})}}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
           "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]}})

    def ready_address() -> str | None:
        slices = cluster.get_json("-n", namespace, "endpointslices", "-l", "kubernetes.io/service-name=web")
        return next((a for s in slices["items"] for e in s.get("endpoints") or []
                     if (e.get("conditions") or {}).get("ready") for a in e["addresses"]), None)

    address = wait_until(ready_address, 40, "a ready endpoint for Service web")
    pod = pods_of(cluster, namespace, "app=web")[0]
    assert address == pod["status"]["podIP"]
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    with urllib.request.urlopen(f"http://{address}:8080/", timeout=5) as response:
        assert response.status == 200
    wait_until(lambda: cluster.get_json("-n", namespace, "deployment", "web").get("status", {})
               .get("availableReplicas") == 1, 20, "the Deployment to be available")

    cluster.kubectl("delete", "deployment", "web", "-n", namespace, "--wait=false", check=True)
    wait_until(lambda: not answers(address, 8080), 20, "the server process to stop")
    wait_until(lambda: not pods_of(cluster, namespace, "app=web"), 20, "the pod to go away")


def bare_pod(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": local_pod_spec(spec)}


def pod_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("-n", namespace, "pod", name).get("status", {})


def test_init_container_output_deadline_and_missing_command(cluster, namespace, podrunner):
    apply(cluster,
          bare_pod(namespace, "init-then-main", {
              "restartPolicy": "Never", "volumes": [{"name": "scratch", "emptyDir": {}}],
              "initContainers": [{"name": "fetch", "command": ["sh", "-c", "echo fetched > /scratch/data"],
                                  "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
              "containers": [{"name": "main", "command": ["sh", "-c", "test \"$(cat data)\" = fetched"],
                              "workingDir": "/scratch",
                              "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}]}),
          bare_pod(namespace, "too-slow", {"restartPolicy": "Never", "activeDeadlineSeconds": 2,
                                           "containers": [{"name": "main", "command": ["sleep", "600"]}]}),
          bare_pod(namespace, "no-command", {"restartPolicy": "Never",
                                             "containers": [{"name": "main", "image": "acgs/trainer:dev"}]}))
    phase = lambda name: pod_status(cluster, namespace, name).get("phase")  # noqa: E731
    wait_until(lambda: phase("init-then-main") == "Succeeded", 20, "the init container's output to be read")
    wait_until(lambda: phase("too-slow") == "Failed", 20, "activeDeadlineSeconds to end the pod")
    assert pod_status(cluster, namespace, "too-slow")["reason"] == "DeadlineExceeded"
    wait_until(lambda: phase("no-command") == "Failed", 20, "the pod without a command to fail")
    terminated = pod_status(cluster, namespace, "no-command")["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "StartError" and "set command explicitly" in terminated["message"]


def test_failing_liveness_probe_restarts_the_container(cluster, namespace, podrunner):
    apply(cluster, bare_pod(namespace, "flaky", {"containers": [{
        "name": "main",
        "command": ["sh", "-c", "touch /tmp/alive-$(POD_UID); sleep 1; rm /tmp/alive-$(POD_UID); sleep 600"],
        "env": [{"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}],
        "livenessProbe": {"exec": {"command": ["sh", "-c", "test -f /tmp/alive-$POD_UID"]},
                          "initialDelaySeconds": 2, "periodSeconds": 1, "failureThreshold": 1}}]}))

    def restarted() -> dict[str, Any] | None:
        statuses = pod_status(cluster, namespace, "flaky").get("containerStatuses") or [{}]
        return statuses[0] if statuses[0].get("restartCount", 0) >= 1 and "running" in statuses[0]["state"] else None

    status = wait_until(restarted, 30, "the container to be restarted")  # 10 s CrashLoopBackOff first
    assert status["lastState"]["terminated"]["exitCode"] == 128 + 15  # SIGTERM, then restarted
    assert "liveness" in status["lastState"]["terminated"]["message"]
