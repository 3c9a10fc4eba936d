"""The operator's RBAC as generated from rbac.RULES: committed, narrow, and namespaced on request."""

from __future__ import annotations

from pathlib import Path

import yaml

from acgs_operator import rbac
from acgs_operator.builders.common import Owner

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate", "delete", "deletecollection"}


def test_committed_manifest_is_generated_from_the_rules():
    assert rbac.main(["--check"]) == 0, "manifests/base/rbac.yaml is stale: run python -m acgs_operator.rbac"


def test_no_wildcard_no_secret_read_no_privilege_verbs():
    docs = list(yaml.safe_load_all((ROOT / "manifests/base/rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] and "*" not in rule["resources"]
        forbidden = FORBIDDEN_VERBS - ({"delete"} if rule["resources"] == ["horizontalpodautoscalers"] else set())
        assert not forbidden & set(rule["verbs"]), rule  # the one delete: an HPA whose autoscaling was removed
        if "secrets" in rule["resources"]:
            assert set(rule["verbs"]) == {"create", "patch"}  # applied, never read
        assert not {"roles", "clusterroles", "rolebindings", "clusterrolebindings", "serviceaccounts",
                    "users", "groups"} & set(rule["resources"])


def test_namespaced_mode_has_no_cluster_scoped_grant():
    objects = [rbac.service_account(), *rbac.namespaced(["team-a", "team-b"])]
    kinds = [o["kind"] for o in objects]
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    roles = [o for o in objects if o["kind"] == "Role"]
    assert [r["metadata"]["namespace"] for r in roles] == ["team-a", "team-b"]
    assert all(r["rules"] == rbac.cluster_scoped()[1]["rules"] for r in roles)


def test_operator_progress_port_admits_exactly_the_trainer_pods():
    """manifests/base/operator.yaml's NetworkPolicy selects the labels the builder puts on trainer pods."""
    from acgs_operator.builders import trainingjob as tjb
    from acgs_operator.config import Settings

    docs = list(yaml.safe_load_all((ROOT / "manifests/base/operator.yaml").read_text()))
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    port = Settings.from_env({"ACGS_PROGRESS_PORT": "8083"}).progress_port
    rules = [r for r in policy["spec"]["ingress"] if any(p["port"] == port for p in r.get("ports", []))]
    assert len(rules) == 1 and [p["port"] for p in rules[0]["ports"]] == [port]
    (peer,) = rules[0]["from"]
    owner = Owner(kind="TrainingJob", name="x", namespace="ns", uid="u" * 36, labels={})
    spec = tjb.TrainingJobSpec.model_validate({"constitutionalHash": "cdd01ef066bc6cf2", "modelName": "m",
                                               "data": {"generate": {"type": "constitutional_ai"}},
                                               "output": {"pvc": "a"}})
    pod_labels = tjb.build_job(spec, owner, Settings())["spec"]["template"]["metadata"]["labels"]
    selector = peer["podSelector"]["matchLabels"]
    assert selector and selector.items() <= pod_labels.items()
    assert selector.get("app.kubernetes.io/component") == "trainer"


def test_the_lease_is_granted_in_the_operators_namespace_only_and_by_name():
    docs = list(yaml.safe_load_all((ROOT / "manifests/base/rbac.yaml").read_text()))
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert not any("leases" in r["resources"] for r in cluster_role["rules"])
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["metadata"]["namespace"] == rbac.SERVICE_ACCOUNT_NAMESPACE
    by_verbs = {tuple(r["verbs"]): r for r in role["rules"]}
    assert by_verbs[("get", "update")]["resourceNames"] == [rbac.LEASE_NAME]
    assert set(by_verbs) == {("create",), ("get", "update")}  # no list, watch, delete
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
