"""Faults on the local control plane: the webhook down, a final status write refused, the
operator SIGKILLed during a burst, kube-apiserver and etcd restarted under a running operator."""

from __future__ import annotations

import json
import random
import subprocess
import time

import pytest
import yaml

from ..conftest import KUBECTL, Cluster, localcluster, wait_until
from .conftest import (
    FAST_LEASE,
    Operators,
    apply_all,
    elapsed,
    events_by_reason,
    jobs_by_owner,
    phases,
    samples,
    training_job,
)

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]
FINAL = {"Succeeded", "Failed"}


def test_every_acgs_write_is_refused_while_the_webhook_is_down(operators: Operators, chaos_namespace: str) -> None:
    """failurePolicy Fail: with no operator (no webhook) nothing of any kind is admitted unchecked."""
    cluster = operators.cluster
    for kind, body in samples().items():
        doc = {**body, "metadata": {**body["metadata"], "namespace": chaos_namespace}}
        out = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
        assert out.returncode != 0 and "failed calling webhook" in out.stderr, (kind, out.stdout, out.stderr)
        out = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc))
        assert out.returncode != 0 and "failed calling webhook" in out.stderr, (kind, out.stderr)
    assert cluster.get_json("acgs", "-n", chaos_namespace)["items"] == []


def refuse_final_status(namespace: str) -> list[dict]:
    """A ValidatingAdmissionPolicy that refuses every final TrainingJob status write in `namespace`."""
    match = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    name = f"refuse-final-status-{namespace}"
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": name},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {**match, "resourceRules": [{
                      "apiGroups": ["acgs.io"], "apiVersions": ["v1alpha1"], "operations": ["UPDATE"],
                      "resources": ["trainingjobs/status"]}]},
                  "validations": [{"expression": "!has(object.status) || !has(object.status.phase) || "
                                                 "!(object.status.phase in ['Failed', 'Succeeded'])",
                                   "message": "chaos: final status writes are refused"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": name},
         "spec": {"policyName": name, "validationActions": ["Deny"], "matchResources": match}},
    ]


def test_a_refused_final_status_write_is_retried_without_a_new_event(operator: Cluster, chaos_namespace: str) -> None:
    cluster = operator
    policy = refuse_final_status(chaos_namespace)
    assert apply_all(cluster, policy).returncode == 0
    try:
        assert apply_all(cluster, [training_job("final", chaos_namespace)]).returncode == 0
        probe = ["patch", "trainingjob", "final", "-n", chaos_namespace, "--subresource=status", "--type=merge",
                 "-p", '{"status":{"phase":"Failed"}}', "--dry-run=server"]
        wait_until(lambda: "chaos: final status writes are refused" in cluster.kubectl(*probe).stderr, 30,
                   "the policy to be enforced")
        # kwok completes the trainer pod (no result): the operator's final write (Failed) is refused.
        wait_until(lambda: cluster.get_json("job", "final-train", "-n", chaos_namespace).get("status", {})
                   .get("completionTime") or "Failed" in json.dumps(cluster.get_json(
                       "job", "final-train", "-n", chaos_namespace).get("status", {})), 60, "the Job to finish")
        log = localcluster.LOGS / "operator.log"
        wait_until(lambda: "status of TrainingJob final not written" in log.read_text(errors="replace"), 60,
                   "a refused final write")
        assert phases(cluster, chaos_namespace)["final"] not in FINAL
    finally:
        for doc in reversed(policy):
            cluster.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"])
    removed = time.monotonic()
    # No new Job event comes (the Job is finished): only the handler's own retry can write it now.
    status = wait_until(lambda: (s := cluster.get_json("trainingjob", "final", "-n", chaos_namespace)["status"])
                        .get("phase") in FINAL and s, 60, "the retried final write")
    print(f"\nfinal status written {elapsed(removed):.1f}s after the refusal ended")
    assert status["phase"] == "Failed" and status["jobName"] == "final-train"


def burst(namespace: str, training_jobs: int, deployments: int) -> list[dict]:
    objects = [training_job(f"tj-{i}", namespace) for i in range(training_jobs)]
    dep = samples()["Deployment"]
    for i in range(deployments):
        spec = {**dep["spec"], "model": {"versionRef": "missing"}, "interactionLogPvc": None}
        objects.append({**dep, "metadata": {"name": f"dep-{i}", "namespace": namespace}, "spec": spec})
    return objects


def converged(cluster: Cluster, namespace: str, training_jobs: int, deployments: int) -> bool:
    """Every TrainingJob has exactly one Job and a final phase; every Deployment both Services and a phase."""
    owners = jobs_by_owner(cluster, namespace)
    if len(owners) != training_jobs or any(len(v) != 1 for v in owners.values()):
        return False
    if any(p not in FINAL for p in phases(cluster, namespace).values()):
        return False
    services = {s["metadata"]["name"] for s in cluster.get_json("services", "-n", namespace)["items"]}
    deps = phases(cluster, namespace, "deployments.acgs.io")
    return len(deps) == deployments and all(deps.values()) and all(
        {f"dep-{i}", f"dep-{i}-preview"} <= services for i in range(deployments))


@pytest.mark.slow  # ~2.5 min: `make test-chaos` runs it, CI's quick set does not
def test_operator_sigkilled_during_a_burst_converges_with_nothing_lost_or_doubled(
        operators: Operators, chaos_namespace: str) -> None:
    """Three SIGKILLs at random points while 200 TrainingJobs and 20 Deployments are being applied
    and reconciled. Writes that hit the dead webhook are refused; they are applied again at the
    end, as a GitOps tool would. Then: one Job per TrainingJob, announced once, final phases."""
    cluster, rng = operators.cluster, random.Random(12)
    tjs, deps = 200, 20
    objects = burst(chaos_namespace, tjs, deps)
    op = operators.start("burst", **FAST_LEASE)
    started = time.monotonic()
    applying = subprocess.Popen([KUBECTL, f"--kubeconfig={cluster.kubeconfig}", "apply", "-f", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    assert applying.stdin is not None
    applying.stdin.write(yaml.safe_dump_all(objects))
    applying.stdin.close()
    kills = []
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 8.0))
        created = len(jobs_by_owner(cluster, chaos_namespace))
        op.kill()
        kills.append(f"{elapsed(started):.0f}s ({created} Jobs)")
        op = operators.start("burst", **FAST_LEASE)  # waits out the dead leader's Lease (4 s)
    applying.wait(300)
    assert apply_all(cluster, objects).returncode == 0  # what the dead webhook refused, applied again
    wait_until(lambda: converged(cluster, chaos_namespace, tjs, deps), 300, "the burst to converge", interval=2)
    print(f"\nSIGKILLs at {kills}; {tjs} TrainingJobs + {deps} Deployments converged {elapsed(started):.0f}s "
          "after the first apply")
    created = events_by_reason(cluster, chaos_namespace, "JobCreated")
    assert max(created.values()) == 1, {k: v for k, v in created.items() if v > 1}
    statuses = [o.get("status") or {} for o in cluster.get_json("trainingjobs", "-n", chaos_namespace)["items"]]
    assert all(s.get("jobName") and "Traceback" not in json.dumps(s) for s in statuses)


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_operator_recovers_by_itself_from_a_control_plane_restart(operator: Cluster, chaos_namespace: str,
                                                                  component: str) -> None:
    import install

    cluster = operator
    pid = localcluster.pid_of("operator")
    assert apply_all(cluster, [training_job(f"pre-{i}", chaos_namespace) for i in range(20)]).returncode == 0
    away = localcluster.restart(component)
    assert apply_all(cluster, [training_job(f"post-{i}", chaos_namespace) for i in range(20)]).returncode == 0
    back = time.monotonic()
    wait_until(lambda: converged(cluster, chaos_namespace, 40, 0), 180, f"convergence after the {component} restart",
               interval=1)
    print(f"\n{component} away {away:.1f}s; 40 TrainingJobs converged {elapsed(back):.1f}s after it was back")
    assert localcluster.pid_of("operator") == pid and install.healthy()  # the same process, no restart
