"""Admission rules that need the operator's configuration or close a door the schema leaves open:
the image allowlist, no allow-all client selectors, no key-less tolerations. Pure functions.

Each check returns a list of problems, one line each naming the field, the value and what was
expected; `admission.validate` joins them into the webhook's refusal. The reconcilers call the
image check again before they create a pod (the allowlist may have changed since admission).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DIGEST_ENTRY = re.compile(r"^sha256:[0-9a-f]{64}$")


def repository(image: str) -> str:
    """`registry/path/name` of an image reference, without its tag and digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def digest(image: str) -> str | None:
    _, sep, pinned = image.partition("@")
    return pinned if sep else None


@dataclass(frozen=True)
class ImageAllowlist:
    """Which images pods may run. Entries (Settings.allowed_images):

    - `ghcr.io/acgs/` (ends with /): every repository under that registry path;
    - `ghcr.io/acgs/trainer` (no trailing /): that repository, any tag or digest;
    - `sha256:<64 hex>`: any image pinned to exactly that digest (`name@sha256:...`).

    Images are compared as written: `trainer:1` is not `docker.io/library/trainer:1`.
    """

    entries: tuple[str, ...]

    def allows(self, image: str) -> bool:
        repo, pinned = repository(image), digest(image)
        for entry in self.entries:
            if DIGEST_ENTRY.match(entry):
                if pinned == entry:
                    return True
            elif entry.endswith("/"):
                if repo.startswith(entry) and ".." not in repo.split("/"):
                    return True
            elif repo == entry:
                return True
        return False

    def problem(self, field: str, image: str) -> str | None:
        if self.allows(image):
            return None
        return (f"{field}: image {image!r} is not in the operator's image allowlist; expected an image "
                f"matching one of {list(self.entries)} (ACGS_ALLOWED_IMAGES)")


def check_images(kind: str, spec: dict[str, Any], allowlist: ImageAllowlist) -> list[str]:
    image = spec.get("image")
    if kind not in ("TrainingJob", "Deployment") or image is None:
        return []  # unset: the operator's configured image, which is on the allowlist by construction
    problem = allowlist.problem("spec.image", str(image))
    return [problem] if problem else []


def check_tolerations(spec: dict[str, Any]) -> list[str]:
    problems = []
    for i, toleration in enumerate(((spec.get("resources") or {}).get("tolerations")) or []):
        if not (toleration or {}).get("key"):
            problems.append(f"spec.resources.tolerations[{i}].key: required; a toleration without a key "
                            "tolerates every taint (control-plane, unschedulable, other teams' GPU nodes); "
                            "expected the taint's key, e.g. nvidia.com/gpu")
    return problems


def check_allowed_clients(spec: dict[str, Any]) -> list[str]:
    problems = []
    for i, peer in enumerate(((spec.get("network") or {}).get("allowedClients")) or []):
        field = f"spec.network.allowedClients[{i}]"
        peer = peer or {}
        if not peer.get("podSelector"):
            problems.append(f"{field}.podSelector: empty selects every pod (allow-all); expected the labels "
                            "of the client pods, e.g. {app: gateway}")
        if "namespaceSelector" in peer and peer["namespaceSelector"] is not None and not peer["namespaceSelector"]:
            problems.append(f"{field}.namespaceSelector: empty selects every namespace (allow-all); expected "
                            "namespace labels, e.g. {kubernetes.io/metadata.name: apps}, or leave it unset "
                            "for the Deployment's own namespace")
    return problems


def check(kind: str, spec: dict[str, Any], allowlist: ImageAllowlist | None) -> list[str]:
    """Every policy problem of one object's spec (empty: admitted)."""
    problems: list[str] = []
    if allowlist is not None:
        problems += check_images(kind, spec, allowlist)
    if kind in ("TrainingJob", "Deployment"):
        problems += check_tolerations(spec)
    if kind == "Deployment":
        problems += check_allowed_clients(spec)
    return problems
