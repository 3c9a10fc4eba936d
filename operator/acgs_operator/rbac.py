"""The operator's RBAC, from the list of API calls its code makes (nothing more).

    python -m acgs_operator.rbac                     # write manifests/base/rbac.yaml (ClusterRole)
    python -m acgs_operator.rbac --check             # fail when the committed file differs
    python -m acgs_operator.rbac --namespaces a,b    # print Roles + RoleBindings for ACGS_NAMESPACES

Every rule names the calls it allows. Adding a call to the operator means adding it here (the
cluster test tests/cluster/test_rbac.py runs `kubectl auth can-i` as the ServiceAccount, and the
constitution test runs the whole operator under these rules). Deliberately absent: any read of
Secrets (the progress-token Secret is only applied: create/patch), delete (children go with their
owner through ownerReferences; the one exception is an HPA whose spec.autoscaling was removed),
wildcards, escalate/bind/impersonate, and the CRD and namespace watches kopf makes only for
resource/namespace scanning (main.configure disables scanning). The leader-election Lease is
granted by a Role in the operator's own namespace only.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .leader import LEASE_NAME

NAME = "acgs-operator"
SERVICE_ACCOUNT_NAMESPACE = "acgs-system"
ACGS = "acgs.io"
KINDS = ("trainingjobs", "modelversions", "deployments", "flywheelpolicies")


@dataclass(frozen=True)
class Rule:
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    calls: str  # the code that makes these calls: why the rule exists


RULES: tuple[Rule, ...] = (
    Rule(ACGS, KINDS, ("list", "watch", "patch"),
         "kopf watches every kind it has handlers for (handlers/*) and patches its own annotations "
         "(acgs.io/last-handled-configuration, handler progress) on the object"),
    Rule(ACGS, ("trainingjobs", "modelversions", "deployments"), ("get",),
         "kube.get: the TrainingJob of a Job event and of a progress report, a parent ModelVersion, "
         "a ModelVersion by name, the Deployment a reconcile re-reads"),
    Rule(ACGS, ("modelversions",), ("create",),
         "handlers/trainingjob.ensure_model_version: a finished run records its ModelVersion"),
    Rule(ACGS, ("trainingjobs",), ("create",),
         "handlers/flywheel_run: a flywheel run's FineTune candidate is a child TrainingJob (kube.apply)"),
    Rule(ACGS, ("modelversions",), ("patch",),
         "handlers/flywheel_run._promote: a flywheel winner's ModelVersion moves to spec.stage production "
         "(autoPromote or acgs.io/promote); the only spec field the operator writes"),
    Rule(ACGS, tuple(f"{k}/status" for k in KINDS), ("patch",),
         "kube.patch_status (every reconciler, the progress endpoint) and kopf's initial status"),
    Rule("batch", ("jobs",), ("get", "list", "watch", "create", "patch"),
         "kube.get/apply of trainer, verification and flywheel collector, prepare and eval Jobs; "
         "kopf.on.event watches them"),
    Rule("", ("persistentvolumeclaims",), ("get", "create"),
         "handlers/flywheel: the Deployment's interactionLogPvc exists before a collector mounts it; "
         "handlers/flywheel_run: the policy's own workspace claim is created (owned) when spec.workspacePvc is unset"),
    Rule("apps", ("deployments",), ("get", "create", "patch"),
         "handlers/deployment: kube.get of each color, kube.apply, the scale-down patch"),
    Rule("", ("services", "configmaps", "secrets"), ("create", "patch"),
         "kube.apply (server-side apply creates or patches): Services of a Deployment, the trainer "
         "config ConfigMap, the progress-token Secret (written, never read back)"),
    Rule("networking.k8s.io", ("networkpolicies",), ("create", "patch"),
         "kube.apply of the trainer and server NetworkPolicies"),
    Rule("autoscaling", ("horizontalpodautoscalers",), ("create", "patch", "delete"),
         "handlers/deployment: kube.apply of the active color's HPA (spec.autoscaling); kube.delete when "
         "autoscaling is removed from the spec (the one delete: an HPA left behind would keep scaling)"),
    Rule("policy", ("poddisruptionbudgets",), ("create", "patch"),
         "handlers/deployment: kube.apply of the active color's PodDisruptionBudget"),
    Rule("", ("pods",), ("list",),
         "kube.list_ of a Job's pods (termination messages) and of a Deployment's server pods (IPs)"),
    Rule("kueue.x-k8s.io", ("workloads",), ("list", "watch"),
         "handlers/trainingjob: a queued Job's Kueue Workload (kube.list_ by its job-uid label) for the "
         "reason it waits; kopf.on.event watches Workloads (read only: Kueue owns a queued Job's suspend)"),
    Rule("", ("events",), ("create",),
         "kopf.info/warn/event: events on our objects for kubectl describe"),
)

# In the operator's namespace only (a Role), and get/update only on its own Lease by name (create
# cannot be limited by name in RBAC).
LEASE_RULES: tuple[Rule, ...] = (
    Rule("coordination.k8s.io", ("leases",), ("create",),
         "leader.Elector: the first replica creates the leader-election Lease"),
    Rule("coordination.k8s.io", ("leases",), ("get", "update"),
         "leader.Elector: read, renew, take over or release the Lease acgs-operator"),
)


def _rules() -> list[dict[str, Any]]:
    return [{"apiGroups": [r.group], "resources": list(r.resources), "verbs": list(r.verbs)} for r in RULES]


def _header() -> str:
    lines = ["# Generated by `python -m acgs_operator.rbac` from operator/acgs_operator/rbac.py. Do not edit",
             "# by hand. Least privilege: each rule is one group of calls the operator's code makes:"]
    for r in RULES + LEASE_RULES:
        lines.append(f"#   {r.group or 'core'} {','.join(r.resources)} [{','.join(r.verbs)}]: {r.calls}")
    return "\n".join(lines) + "\n"


def service_account() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": SERVICE_ACCOUNT_NAMESPACE},
            "automountServiceAccountToken": True}


def _subject() -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": NAME, "namespace": SERVICE_ACCOUNT_NAMESPACE}


def leader_election() -> list[dict[str, Any]]:
    """Role and RoleBinding for the Lease, in the operator's namespace (both modes)."""
    rules: list[dict[str, Any]] = [{"apiGroups": [r.group], "resources": list(r.resources), "verbs": list(r.verbs)}
                                   for r in LEASE_RULES]
    rules[1]["resourceNames"] = [LEASE_NAME]
    name = f"{NAME}-leader-election"
    meta = {"name": name, "namespace": SERVICE_ACCOUNT_NAMESPACE}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(meta),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [_subject()]},
    ]


def cluster_scoped() -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and its binding: the operator watches every namespace."""
    return [
        service_account(),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": NAME},
         "rules": _rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": NAME},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": [_subject()]},
        *leader_election(),
    ]


def namespaced(namespaces: list[str]) -> list[dict[str, Any]]:
    """A Role and RoleBinding in each watched namespace (ACGS_NAMESPACES): nothing cluster-wide."""
    out: list[dict[str, Any]] = []
    for ns in namespaces:
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": NAME, "namespace": ns}, "rules": _rules()})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": NAME, "namespace": ns},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
                    "subjects": [_subject()]})
    return out


def render(objects: list[dict[str, Any]]) -> str:
    return _header() + "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", help="comma-separated watched namespaces: print namespaced Roles")
    parser.add_argument("--check", action="store_true", help="fail when the committed rbac.yaml is stale")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "manifests/base/rbac.yaml")
    args = parser.parse_args(argv)
    if args.namespaces:
        names = [n.strip() for n in args.namespaces.split(",") if n.strip()]
        sys.stdout.write(render([service_account(), *namespaced(names), *leader_election()]))
        return 0
    text = render(cluster_scoped())
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is stale: run `python -m acgs_operator.rbac`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
