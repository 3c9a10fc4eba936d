"""Semantic versions (semver.org): the one parser, the sort key and the bump of a TrainingJob's
versionPolicy. Pure."""

from __future__ import annotations

import re
from typing import Any

from .api.common import SEMVER_PATTERN

_CORE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?")
MAJOR, MINOR, PATCH = "major", "minor", "patch"


def parse(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a semantic version; pre-release and build parts are dropped."""
    match = _CORE.match(version) if re.match(SEMVER_PATTERN, version) else None
    if match is None:
        raise ValueError(f"version {version!r} is not a semantic version: expected MAJOR.MINOR.PATCH, e.g. 1.2.0")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def sort_key(version: str) -> tuple[Any, ...]:
    """Sort key: a release sorts after its pre-releases (SemVer §11); a non-version sorts first."""
    match = _CORE.match(version or "")
    if not match:
        return (-1, -1, -1, 0, ())
    major, minor, patch, pre = match.groups()
    pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return (int(major), int(minor), int(patch), 0 if pre else 1, pre_key)


def bump(version: str | None, policy: str) -> str:
    """`version` with the `policy` part raised (no version: from 0.0.0)."""
    major, minor, patch = parse(version) if version else (0, 0, 0)
    if policy == MAJOR:
        return f"{major + 1}.0.0"
    if policy == MINOR:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def candidates(parent_version: str | None, policy: str, limit: int = 100) -> list[str]:
    """The version to take after `parent_version`, then the ones to try when it is taken."""
    out, version = [], bump(parent_version, policy)
    for _ in range(limit):
        out.append(version)
        version = bump(version, policy)
    return out
