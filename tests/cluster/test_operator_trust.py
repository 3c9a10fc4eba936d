"""The operator's trust boundaries on the real apiserver: its RBAC as `kubectl auth can-i` sees it,
and a reconfigured constitution holding objects admitted under the previous one - with the
operator running as its own ServiceAccount (a token from the TokenRequest API), so every call the
exercised paths make is checked against manifests/base/rbac.yaml.

    flock /tmp/acgs-cluster.lock .venv/bin/python -m pytest tests/cluster/test_operator_trust.py -x -q
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from ..conftest import ROOT, Cluster, localcluster, wait_until

pytestmark = [pytest.mark.cluster]

HASH = "cdd01ef066bc6cf2"
AMENDED = "a11ce0000000b0b0"
SA = "system:serviceaccount:acgs-system:acgs-operator"
RBAC = ROOT / "manifests/base/rbac.yaml"


def can_i(cluster: Cluster, verb: str, resource: str, namespace: str | None = None) -> bool:
    """The apiserver's own answer (a SubjectAccessReview, as `kubectl auth can-i` sends) for the
    operator's ServiceAccount; ``resource`` is `plural[/sub].group` — the group need not be served
    (Kueue's rules are checked on a cluster without Kueue)."""
    name, _, group = resource.partition(".")
    plural, _, sub = name.partition("/")
    attributes = {"verb": verb, "group": group, "resource": plural, "subresource": sub, "namespace": namespace or ""}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": SA, "groups": ["system:serviceaccounts", "system:serviceaccounts:acgs-system",
                                              "system:authenticated"],
                       "resourceAttributes": attributes}}
    out = cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review), check=True)
    return bool(json.loads(out.stdout)["status"].get("allowed"))


@pytest.fixture(scope="module")
def cluster_rbac(operator: Cluster) -> Cluster:
    """manifests/base/rbac.yaml applied (the operator fixture installed the CRDs the rules name)."""
    cluster = operator
    cluster.kubectl("create", "namespace", "acgs-system")  # exists already: fine
    cluster.kubectl("apply", "-n", "acgs-system", "-f", str(RBAC), check=True)
    return cluster


def rules() -> list[dict[str, Any]]:
    return next(d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "ClusterRole")["rules"]


class TestRbac:
    def test_every_verb_the_operator_calls_is_granted(self, cluster_rbac: Cluster, namespace: str) -> None:
        missing = [f"{verb} {res}.{rule['apiGroups'][0]}" for rule in rules() for res in rule["resources"]
                   for verb in rule["verbs"]
                   if not can_i(cluster_rbac, verb, f"{res}.{rule['apiGroups'][0]}".rstrip("."), namespace)]
        assert missing == []

    @pytest.mark.parametrize("verb, resource", [
        ("get", "secrets"), ("list", "secrets"), ("watch", "secrets"),  # reads no Secret anywhere
        ("delete", "jobs.batch"), ("delete", "trainingjobs.acgs.io"), ("create", "pods"),
        ("get", "configmaps"), ("update", "deployments.apps"), ("create", "flywheelpolicies.acgs.io"),
        ("update", "trainingjobs.acgs.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"), ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"), ("impersonate", "serviceaccounts"),
        ("impersonate", "users"), ("create", "serviceaccounts/token"), ("list", "customresourcedefinitions"),
        ("list", "namespaces"), ("*", "*"),
    ])
    def test_nothing_beyond(self, cluster_rbac: Cluster, namespace: str, verb: str, resource: str) -> None:
        assert not can_i(cluster_rbac, verb, resource, namespace)
        assert not can_i(cluster_rbac, verb, resource)

    def test_no_wildcard_in_what_the_apiserver_grants(self, cluster_rbac: Cluster, namespace: str) -> None:
        out = cluster_rbac.kubectl("auth", "can-i", "--list", f"--as={SA}", "-n", namespace, check=True).stdout
        granted = [line.split() for line in out.splitlines()[1:] if line.strip()]
        # Self-reviews and the non-resource discovery URLs ([/api/*] ...) are every user's (system:basic-user,
        # system:discovery); the rest is the operator's own.
        ours = [row for row in granted if not row[0].startswith(("selfsubject", "["))]
        assert ours and all("*" not in row[0] and "[*]" not in row[-1] for row in ours), out

    def test_namespaced_roles_grant_only_the_watched_namespaces(self, cluster: Cluster, namespace: str) -> None:
        other = f"{namespace}-x"
        cluster.kubectl("create", "namespace", other, check=True)
        sa = f"system:serviceaccount:{namespace}:acgs-operator"
        text = subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "acgs_operator.rbac", "--namespaces", namespace],
                              capture_output=True, text=True, check=True).stdout
        docs = [d for d in yaml.safe_load_all(text) if d]
        for doc in docs:  # the operator's account in this test's own namespace, so tests do not collide
            doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects", []):
                subject["namespace"] = namespace
        assert {d["kind"] for d in docs} == {"ServiceAccount", "Role", "RoleBinding"}
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=True)
        try:
            def ask(verb: str, resource: str, ns: str) -> str:
                return cluster.kubectl("auth", "can-i", verb, resource, f"--as={sa}", "-n", ns).stdout.strip()
            assert ask("watch", "trainingjobs.acgs.io", namespace) == "yes"
            assert ask("create", "jobs.batch", namespace) == "yes"
            assert ask("watch", "trainingjobs.acgs.io", other) == "no"
            assert ask("create", "jobs.batch", other) == "no"
        finally:
            cluster.kubectl("delete", "namespace", other, "--wait=false")


# --- a reconfigured constitution ---------------------------------------------------------------


def sa_kubeconfig(cluster: Cluster, directory: Path) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (bound token, 1 h)."""
    token = cluster.kubectl("create", "token", "acgs-operator", "-n", "acgs-system", "--duration=3600s",
                            check=True).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config = {"apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
              "users": [{"name": "acgs-operator", "user": {"token": token}}],
              "contexts": [{"name": "operator", "context": {"cluster": admin["clusters"][0]["name"],
                                                            "user": "acgs-operator"}}],
              "current-context": "operator"}
    path = directory / "operator-sa.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class OperatorAs:
    """Runs the operator from this checkout with an environment of the test's choosing, in the place
    of the shared one (same ports, same pidfile); the shared one comes back afterwards."""

    def __init__(self, log: Path) -> None:
        import install

        self.install, self.log = install, log

    def start(self, **env: str) -> None:
        install = self.install
        install.stop_pidfile(localcluster.PIDS / "operator.pid")
        with open(self.log, "ab") as out:
            out.write(f"\n=== operator with {sorted(env)} ===\n".encode())
            identity = f"local-{os.urandom(4).hex()}"
            proc = subprocess.Popen([str(ROOT / ".venv/bin/acgs-operator")],
                                    env={**install.operator_env(), **install.LOCAL_LEASE,
                                         "ACGS_LEADER_IDENTITY": identity, **env},
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        (localcluster.PIDS / "operator.pid").write_text(str(proc.pid))
        # Up means what install.start_operator waits for: healthy, leading, and its webhook process serving.
        wait_until(lambda: proc.poll() is not None or (install.healthy() and install.lease_holder() == identity
                                                        and install.serving()), 90, "the operator to start")
        assert proc.poll() is None, f"operator exited: {self.log.read_text()[-3000:]}"

    def restore(self) -> None:
        self.install.start_operator(restart=True)

    def forbidden(self) -> list[str]:
        """RBAC refusals in the operator's log. A 403 for writing into a namespace that is being
        deleted (an earlier test's) is the NamespaceLifecycle admission plugin, not RBAC."""
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if (" 403" in line or "Forbidden" in line or "forbidden" in line)
                and "is being terminated" not in line]


@pytest.fixture
def operator_as(operator: Cluster, tmp_path: Path) -> Iterator[OperatorAs]:
    runner = OperatorAs(tmp_path / "operator.log")
    try:
        yield runner
    finally:
        runner.restore()


def apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
                    check=True)


def objects(namespace: str, hash_: str = HASH) -> list[dict[str, Any]]:
    meta = {"namespace": namespace}
    return [
        {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "held", **meta},
         "spec": {"constitutionalHash": hash_, "modelName": "cai", "suspend": True,  # Job created, no pod
                  "data": {"generate": {"type": "constitutional_ai", "size": 20}}, "output": {"pvc": "artifacts"},
                  "resources": {"cpu": "1", "memory": "1Gi", "gpus": 0}}},
        {"apiVersion": "acgs.io/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "cai-1-0-0", **meta},
         "spec": {"constitutionalHash": hash_, "modelName": "cai", "version": "1.0.0", "stage": "production",
                  "baseModel": "builtin:tiny-llama",
                  "artifact": {"uri": "pvc://artifacts/cai/artifact", "digest": "sha256:" + "a" * 64}}},
        {"apiVersion": "acgs.io/v1alpha1", "kind": "Deployment", "metadata": {"name": "cai", **meta},
         "spec": {"constitutionalHash": hash_, "model": {"selector": {"modelName": "cai", "stage": "production"}},
                  "network": {"allowedClients": [{"podSelector": {"app": "gw"}}]}}},
    ]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def exists(cluster: Cluster, namespace: str, *what: str) -> bool:
    return cluster.kubectl("get", *what, "-n", namespace).returncode == 0


def test_reconfigured_constitution_holds_objects_admitted_under_the_old_one(
        operator: Cluster, cluster_rbac: Cluster, operator_as: OperatorAs, namespace: str, tmp_path: Path) -> None:
    cluster, ns = operator, namespace
    kubeconfig = str(sa_kubeconfig(cluster, tmp_path))

    # 1. Objects admitted under HASH by an operator that serves the webhook but watches elsewhere, so
    #    nothing has been reconciled yet. The Deployment already serves blue (as an earlier rollout left it).
    from acgs_operator.config import Settings

    own = Settings.from_env(operator_as.install.operator_env()).image_allowlist.entries
    operator_as.start(KUBECONFIG=kubeconfig, ACGS_NAMESPACES="acgs-nowhere",
                      ACGS_ALLOWED_IMAGES=",".join(["ghcr.io/acgs/", *own]))  # wider than the default
    experimental = {**objects(ns)[0], "metadata": {"name": "experimental", "namespace": ns}}
    experimental["spec"] = {**experimental["spec"], "image": "ghcr.io/acgs/experimental:1"}
    apply(cluster, *objects(ns), experimental)
    cluster.kubectl("patch", "deployments.acgs.io/cai", "-n", ns, "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": {"activeColor": "blue", "activeModelVersion": "cai-1-0-0"}}), check=True)

    # 2. The operator is reconfigured with an amended constitution (its own RBAC, all namespaces):
    #    new content, its digest pinned by configuration to the new hash.
    from acgs_contract import constitution as contract_constitution

    amended = yaml.safe_load(contract_constitution.default_text())
    amended["amendment"] = "test: a constitution the objects above were not admitted under"
    amended_file = tmp_path / "amended-constitution.yaml"
    amended_file.write_text(yaml.safe_dump(amended))
    operator_as.start(KUBECONFIG=kubeconfig, ACGS_CONSTITUTIONAL_HASH=AMENDED,
                      ACGS_CONSTITUTION_PATH=str(amended_file),
                      ACGS_CONSTITUTION_DIGEST=contract_constitution.content_digest_of_text(amended_file.read_text()))

    def held(kind: str, name: str) -> dict[str, Any] | None:
        obj = cluster.get_json(kind, name, "-n", ns)
        return obj if condition(obj, "ConstitutionMismatch").get("status") == "True" else None

    tj = wait_until(lambda: held("trainingjob", "held"), 60, "the TrainingJob to be held")
    mv = wait_until(lambda: held("modelversion", "cai-1-0-0"), 60, "the ModelVersion to be held")
    dep = wait_until(lambda: held("deployments.acgs.io", "cai"), 60, "the Deployment to be held")
    for obj in (tj, mv, dep):
        message = condition(obj, "ConstitutionMismatch")["message"]
        assert f"'{HASH}'" in message and f"'{AMENDED}'" in message, message
        assert condition(obj, "ConstitutionMismatch")["reason"] == "ConstitutionalHashMismatch"
    assert mv["status"]["phase"] == "Pending" and condition(mv, "Ready")["status"] == "False"
    assert dep["status"]["phase"] == "Degraded" and "blue keeps serving cai-1-0-0" in dep["status"]["message"]
    time.sleep(5)  # a few reconcile ticks later, still nothing was started, verified or promoted
    assert not exists(cluster, ns, "job", "held-train")
    assert not exists(cluster, ns, "job", "cai-1-0-0-verify")
    assert not exists(cluster, ns, "deployments.apps", "cai-blue")
    assert not exists(cluster, ns, "configmap", "held-trainer-config")
    status = cluster.get_json("deployments.acgs.io", "cai", "-n", ns)["status"]
    assert (status["activeColor"], status["activeModelVersion"]) == ("blue", "cai-1-0-0")
    # New objects under the old constitution are refused; a label on a held one is not (kopf's notes too).
    out = cluster.kubectl("apply", "-f", "-", input=json.dumps({**objects(ns)[0], "metadata": {
        "name": "another", "namespace": ns}}))
    assert out.returncode != 0 and f"expected '{AMENDED}'" in out.stderr
    cluster.kubectl("label", "trainingjob/held", "-n", ns, "team=a", check=True)

    # 3. Back to the constitution they were admitted under: the objects proceed, still under the
    #    operator's own RBAC (Job, ConfigMap, Secret, NetworkPolicy, verification Job are created).
    operator_as.start(KUBECONFIG=kubeconfig)

    def cleared(kind: str, name: str) -> dict[str, Any] | None:
        obj = cluster.get_json(kind, name, "-n", ns)
        return obj if condition(obj, "ConstitutionMismatch").get("status") == "False" else None

    wait_until(lambda: cleared("trainingjob", "held"), 120, "the TrainingJob to proceed")
    wait_until(lambda: exists(cluster, ns, "job", "held-train"), 60, "the trainer Job")
    for child in (("configmap", "held-trainer-config"), ("secret", "held-progress"), ("networkpolicy", "held-train")):
        assert exists(cluster, ns, *child), child
    wait_until(lambda: cleared("modelversion", "cai-1-0-0"), 120, "the ModelVersion to proceed")
    wait_until(lambda: exists(cluster, ns, "job", "cai-1-0-0-verify"), 60, "the verification Job")
    dep = wait_until(lambda: cleared("deployments.acgs.io", "cai"), 120, "the Deployment to proceed")
    assert "constitutionalHash" not in dep["status"]["message"]
    # The allowlist is narrower now than when `experimental` was admitted: its Job is never created.
    failed = wait_until(lambda: (t := cluster.get_json("trainingjob", "experimental", "-n", ns))
                        .get("status", {}).get("phase") == "Failed" and t, 120, "the experimental image refused")
    assert condition(failed, "Failed")["reason"] == "ImageNotAllowed"
    assert "'ghcr.io/acgs/experimental:1'" in condition(failed, "Failed")["message"]
    assert not exists(cluster, ns, "job", "experimental-train")
    assert operator_as.forbidden() == [], "the operator hit RBAC refusals"
