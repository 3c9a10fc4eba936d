"""Pieces every child manifest shares: labels, security contexts, names."""

from __future__ import annotations

import hashlib
from typing import Any

from ..constants import (LABEL_COMPONENT, LABEL_HASH, LABEL_MANAGED_BY, LABEL_NAME, LABEL_OWNER_KIND,
                         LABEL_OWNER_NAME, LABEL_PART_OF)

# Labels a GitOps tool uses to claim objects; never copied onto children (Argo CD would prune them).
GITOPS_LABEL_PREFIXES = ("app.kubernetes.io/instance", "argocd.argoproj.io/")


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
        if not key.startswith(GITOPS_LABEL_PREFIXES):
            labels[key] = value
    return labels


def pod_security_context() -> dict[str, Any]:
    """Pod Security 'restricted': non-root, RuntimeDefault seccomp."""
    return {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def child_name(owner_name: str, suffix: str, limit: int = 63) -> str:
    """Deterministic, DNS-safe child name; long owners get a short hash so names stay unique."""
    name = f"{owner_name}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(owner_name.encode()).hexdigest()[:8]
    return f"{owner_name[:limit - len(suffix) - 10]}-{digest}-{suffix}"
