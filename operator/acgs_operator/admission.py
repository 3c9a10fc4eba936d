"""What the validating webhook checks, as pure functions (no kopf, no API calls).

The apiserver already enforces the CRD schema and its CEL rules before a validating webhook is
called; these checks add what needs the operator's configuration (the expected constitutional
hash) and re-check the whole spec with the same pydantic models, so an outdated CRD cannot let
an invalid object through.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from . import policy
from .api import BY_KIND
from .api.modelversion import IMMUTABLE_FIELDS
from .errors import describe


class Rejected(Exception):
    """The object must not be admitted; the message is what the user sees."""


def check_hash(spec: dict[str, Any], expected: str) -> None:
    given = spec.get("constitutionalHash")
    if given is None:
        raise Rejected(f"spec.constitutionalHash is required: expected {expected!r}")
    if given != expected:
        raise Rejected(
            f"spec.constitutionalHash {given!r} does not match the operator's constitution: expected {expected!r}")


def check_immutable(kind: str, spec: dict[str, Any], old_spec: dict[str, Any] | None) -> None:
    if kind != "ModelVersion" or not old_spec:
        return
    changed = [f for f in IMMUTABLE_FIELDS if spec.get(f) != old_spec.get(f)]
    if changed:
        fields = ", ".join(f"spec.{f}" for f in changed)
        raise Rejected(f"ModelVersion spec is immutable except spec.stage; changed: {fields}")


def validate(kind: str, spec: dict[str, Any] | None, old_spec: dict[str, Any] | None, expected_hash: str,
             allowlist: policy.ImageAllowlist | None = None) -> None:
    """Raise Rejected with a user-facing message when the object must not be admitted.

    `allowlist`: the operator's image allowlist (Settings.image_allowlist); None skips that check."""
    if kind not in BY_KIND:
        raise Rejected(f"unknown kind {kind!r}: expected one of {sorted(BY_KIND)}")
    spec = spec or {}
    if old_spec is not None and spec == old_spec:
        # A metadata-only update (labels, annotations, kopf's bookkeeping) of an object admitted
        # earlier. Refusing it after a reconfiguration would leave the object unable to carry the
        # operator's own notes; the reconcilers hold such an object instead (ConstitutionMismatch).
        return
    check_hash(spec, expected_hash)
    try:
        BY_KIND[kind].spec.model_validate(spec)
    except ValidationError as e:
        raise Rejected(describe(e)) from None
    problems = policy.check(kind, spec, allowlist)
    if problems:
        raise Rejected("; ".join(problems))
    check_immutable(kind, spec, old_spec)
