"""Pieces every child manifest shares: the owner (and its owner reference), labels, security
contexts, names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..constants import (
    API_VERSION,
    LABEL_COMPONENT,
    LABEL_HASH,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_OWNER_KIND,
    LABEL_OWNER_NAME,
    LABEL_PART_OF,
)

# Labels a GitOps tool uses to claim objects; never copied onto children (Argo CD would prune them).
GITOPS_LABEL_PREFIXES = ("app.kubernetes.io/instance", "argocd.argoproj.io/")


@dataclass(frozen=True)
class Owner:
    """The acgs.io object whose children a builder makes. Children carry its owner reference (the
    one way they get one), so they are garbage-collected with it."""

    kind: str
    name: str
    namespace: str
    uid: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Owner:
        meta = obj["metadata"]
        return cls(kind=obj["kind"], name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                   labels=dict(meta.get("labels") or {}))

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": self.kind, "name": self.name, "uid": self.uid,
                "controller": True, "blockOwnerDeletion": True}

    def owns(self, child: dict[str, Any]) -> bool:
        return any(ref.get("uid") == self.uid for ref in child["metadata"].get("ownerReferences") or [])


def child_metadata(owner: Owner, name: str, labels: dict[str, str],
                   annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": owner.namespace, "labels": labels,
                            "ownerReferences": [owner.reference()]}
    if annotations:
        meta["annotations"] = annotations
    return meta


def child_labels(owner_kind: str, owner_name: str, constitutional_hash: str, component: str,
                 extra: dict[str, str] | None = None) -> dict[str, str]:
    labels = {
        LABEL_NAME: "acgs",
        LABEL_PART_OF: "acgs",
        LABEL_MANAGED_BY: "acgs-operator",
        LABEL_COMPONENT: component,
        LABEL_OWNER_KIND: owner_kind.lower(),
        LABEL_OWNER_NAME: owner_name[:63],
        LABEL_HASH: constitutional_hash,
    }
    for key, value in (extra or {}).items():
        # The standard labels win: handlers select children by them (a TrainingJob's own
        # acgs.io/owner-kind, say, must not relabel its trainer Job).
        if not key.startswith(GITOPS_LABEL_PREFIXES) and key not in labels:
            labels[key] = value
    return labels


def pod_security_context() -> dict[str, Any]:
    """Pod Security 'restricted': non-root, RuntimeDefault seccomp."""
    return {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def short_job_pod_spec(container: str, image: str, command: list[str], mounts: list[dict[str, Any]],
                       volumes: list[dict[str, Any]], tmp: dict[str, Any] | None = None) -> dict[str, Any]:
    """The restricted pod of a short, read-only check Job (verification, flywheel collection): no
    service-account token, a writable ``/tmp`` only, the result in the termination message."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [{
            "name": container, "image": image, "command": command,
            "env": [{"name": "HOME", "value": "/tmp"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                          "limits": {"cpu": "1", "memory": "1Gi"}},
            "securityContext": container_security_context(),
            "volumeMounts": [*mounts[:1], {"name": "tmp", "mountPath": "/tmp"}, *mounts[1:]],
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }],
        "volumes": [*volumes[:1], {"name": "tmp", "emptyDir": tmp or {}}, *volumes[1:]],
    }


def child_name(owner_name: str, suffix: str, limit: int = 63) -> str:
    """Deterministic, DNS-safe child name; long owners get a short hash so names stay unique."""
    name = f"{owner_name}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(owner_name.encode()).hexdigest()[:8]
    return f"{owner_name[:limit - len(suffix) - 10]}-{digest}-{suffix}"
