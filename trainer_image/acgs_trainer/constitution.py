"""The constitution as data, and a pure rule engine over structured scenarios.

The rule engine is the single ground truth: dataset targets are derived from it, the constitutional
filter revises examples against it, and the evaluation's compliance score compares the model's own
decisions with it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from acgs_contract import env
from acgs_contract.constitution import (CONSTITUTIONAL_HASH, ConstitutionDigestMismatch,
                                        check_content, content_digest, default_text)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["CONSTITUTIONAL_HASH", "Constitution", "ConstitutionError", "Verdict", "default_text",
           "load_constitution"]

DECISIONS: tuple[str, ...] = ("APPROVE", "ESCALATE", "DENY")
CONSTITUTION_ENV = env.CONSTITUTION_PATH

Op = Literal["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le"]


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str
    op: Op
    value: Any

    def holds(self, scenario: Mapping[str, Any]) -> bool:
        # A rule about a field the scenario does not have cannot fire: rules of one dataset type
        # (e.g. accuracy_drop_pct) stay silent for the others.
        if self.field not in scenario:
            return False
        actual = scenario[self.field]
        if self.op == "eq":
            return bool(actual == self.value)
        if self.op == "ne":
            return bool(actual != self.value)
        if self.op == "in":
            return actual in self.value
        if self.op == "not_in":
            return actual not in self.value
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            return False
        if self.op == "gt":
            return actual > self.value
        if self.op == "ge":
            return actual >= self.value
        if self.op == "lt":
            return actual < self.value
        return actual <= self.value


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    principle: str
    decision: Literal["APPROVE", "ESCALATE", "DENY"]
    when: list[Condition] = Field(min_length=1)

    def fires(self, scenario: Mapping[str, Any]) -> bool:
        return all(c.holds(scenario) for c in self.when)


@dataclass(frozen=True)
class Verdict:
    """What the constitution says about one scenario."""

    decision: str
    principles: tuple[str, ...]  # sorted, unique: the principles of the rules that set the decision
    rules: tuple[str, ...]  # ids of the rules that set the decision


class Constitution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    constitutional_hash: str
    version: str
    decisions: list[str] = Field(default_factory=lambda: list(DECISIONS))
    default_decision: Literal["APPROVE", "ESCALATE", "DENY"] = "APPROVE"
    principles: dict[str, str]
    rules: list[Rule]
    source_sha256: str = ""
    #: sha256 of the canonical content (acgs_contract.constitution.content_digest), checked
    #: against the digest pinned to ``constitutional_hash`` when loaded
    content_digest: str = ""

    @model_validator(mode="after")
    def _rules_name_known_principles(self) -> "Constitution":
        for rule in self.rules:
            if rule.principle not in self.principles:
                raise ValueError(
                    f"rule {rule.id!r}: principle={rule.principle!r}: expected one of "
                    f"{sorted(self.principles)}"
                )
        if sorted(self.decisions) != sorted(DECISIONS):
            raise ValueError(f"decisions={self.decisions}: expected an ordering of {list(DECISIONS)}")
        return self

    def evaluate(self, scenario: Mapping[str, Any]) -> Verdict:
        """Derive the decision: the strictest decision among the rules that fire, else the default."""
        fired = [r for r in self.rules if r.fires(scenario)]
        if not fired:
            return Verdict(self.default_decision, (), ())
        rank = {d: i for i, d in enumerate(self.decisions)}
        strictest = max((r.decision for r in fired), key=rank.__getitem__)
        setting = [r for r in fired if r.decision == strictest]
        return Verdict(
            strictest,
            tuple(sorted({r.principle for r in setting})),
            tuple(r.id for r in setting),
        )


class ConstitutionError(ValueError):
    """The constitution file cannot be read, or is not the content pinned to the expected hash."""


def _parse(text: str, origin: str, expected_hash: str, pinned_digest: str | None) -> Constitution:
    try:
        raw = yaml.safe_load(text)
        constitution = Constitution.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConstitutionError(f"constitution {origin}: invalid: {exc}") from exc
    if constitution.constitutional_hash != expected_hash:
        raise ConstitutionError(
            f"constitution {origin}: constitutional_hash={constitution.constitutional_hash!r}: "
            f"expected {expected_hash!r}"
        )
    # The hash is only a label the file gives itself: the content must be the one pinned to it.
    try:
        constitution.content_digest = check_content(expected_hash, content_digest(raw),
                                                    pinned_digest, origin=f"constitution {origin}")
    except (ConstitutionDigestMismatch, ValueError) as exc:
        raise ConstitutionError(str(exc)) from exc
    constitution.source_sha256 = hashlib.sha256(text.encode()).hexdigest()
    return constitution


def load_constitution(
    path: str | os.PathLike[str] | None = None, expected_hash: str = CONSTITUTIONAL_HASH,
    pinned_digest: str | None = None,
) -> Constitution:
    """Load the constitution from ``path``, ``$ACGS_CONSTITUTION_PATH``, or the packaged default.

    Refuses (ConstitutionError naming both digests) content whose digest is not the one pinned to
    ``expected_hash``: the contract's pin, or ``pinned_digest`` (else $ACGS_CONSTITUTION_DIGEST)
    that the operator's configuration gives for a hash the contract does not pin.
    """
    chosen = path or os.environ.get(CONSTITUTION_ENV)
    pinned = pinned_digest or os.environ.get(env.CONSTITUTION_DIGEST) or None
    if chosen:
        try:
            text = Path(chosen).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConstitutionError(f"constitution {chosen}: cannot read: {exc}") from exc
        return _parse(text, str(chosen), expected_hash, pinned)
    return _cached_default(expected_hash, pinned)


@lru_cache(maxsize=4)
def _cached_default(expected_hash: str, pinned_digest: str | None) -> Constitution:
    return _parse(default_text(), "(packaged default)", expected_hash, pinned_digest)
