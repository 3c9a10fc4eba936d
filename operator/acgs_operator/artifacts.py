"""Artifact URIs: the one parser. The operator mounts (verify Jobs, server pods) only
pvc://<claim>/<path>; other schemes are valid records it cannot mount."""

from __future__ import annotations

import re
from dataclasses import dataclass

PVC_SCHEME = "pvc"
_CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class UnsupportedArtifact(ValueError):
    """The artifact cannot be mounted; the message names the URI, what is wrong and what is expected."""


@dataclass(frozen=True)
class PvcArtifact:
    claim: str
    path: str  # inside the claim, without leading or trailing '/'

    @property
    def uri(self) -> str:
        return f"{PVC_SCHEME}://{self.claim}/{self.path}"


def parse_pvc(uri: str, field: str = "artifact.uri") -> PvcArtifact:
    """pvc://<claim>/<path> → PvcArtifact; raises UnsupportedArtifact for anything else."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme != PVC_SCHEME:
        raise UnsupportedArtifact(f"{field} {uri!r}: only PVC artifacts can be mounted; "
                                  "expected pvc://<claim>/<path>")
    claim, _, path = rest.partition("/")
    path = path.strip("/")
    if not _CLAIM.match(claim) or not path or ".." in path.split("/"):
        raise UnsupportedArtifact(f"{field} {uri!r}: expected pvc://<claim>/<path> with a claim name "
                                  "and a path without '..'")
    return PvcArtifact(claim, path)


def parse_allowed_pvc(uri: str, allowed_claim: str | None, field: str = "artifact.uri") -> PvcArtifact:
    """As parse_pvc, and the claim must be `allowed_claim` when one is set (spec.artifactPvc)."""
    artifact = parse_pvc(uri, field)
    if allowed_claim and artifact.claim != allowed_claim:
        raise UnsupportedArtifact(f"{field} {uri!r} is on PVC {artifact.claim!r}, but spec.artifactPvc "
                                  f"allows only {allowed_claim!r}")
    return artifact
