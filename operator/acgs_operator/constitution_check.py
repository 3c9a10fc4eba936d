"""The constitution check every reconciler repeats: admission compared an object's hash with the
operator's hash of that moment, but the operator can be reconfigured (ACGS_CONSTITUTIONAL_HASH)
after objects were admitted. An object whose hash is not the current one starts no Job, has no
version verified, selected or promoted, and says why in a `ConstitutionMismatch` condition."""

from __future__ import annotations

from typing import Any

from . import conditions as cond

CONDITION = "ConstitutionMismatch"
MISMATCH = cond.CONSTITUTIONAL_HASH_MISMATCH
MATCHES = "ConstitutionMatches"
RECHECK_SECONDS = 30.0  # a held object is looked at again this often (and on every operator start)


def mismatch(kind: str, given: str | None, current: str) -> str | None:
    """Why an object governed by `given` must wait (None: it is governed by the current constitution)."""
    if given == current:
        return None
    return (f"{kind} spec.constitutionalHash {given!r} is not the operator's current constitutional hash "
            f"{current!r}; nothing is started, verified, selected or promoted for it until the two match "
            "(update spec.constitutionalHash, or configure the operator with that constitution)")


def mark(conditions: list[dict[str, Any]] | None, message: str | None,
         generation: int | None) -> list[dict[str, Any]]:
    """`conditions` with ConstitutionMismatch set (message) or cleared (None; only when present)."""
    if message:
        return cond.set_condition(conditions, CONDITION, True, MISMATCH, message, generation)
    if cond.get_condition(conditions, CONDITION):
        return cond.set_condition(conditions, CONDITION, False, MATCHES, "", generation)
    return list(conditions or [])


def is_marked(status: dict[str, Any] | None) -> bool:
    return (cond.get_condition((status or {}).get("conditions"), CONDITION) or {}).get("status") == "True"
