"""What a served decision rests on, and whether the constitution agrees with it.

The model answers ``DECISION principle ...``. The constitution's rule engine (the trainer's, the
ground truth the model was trained and scored on) judges the same scenario fields. A reply reports
the model's decision and principles, the constitution rules that fire on the scenario and set that
decision, a reasoning text built the way the dataset's target reasoning is, and compliance_score:
1.0 when the model's decision is the one the rules derive (the trainer's evaluation metric, for one
request), else 0.0. For a seed-shaped body that leaves schema fields out, the rules judge only the
fields given; the reply lists the rest in `missing_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from acgs_trainer.constitution import Constitution, ConstitutionError, Verdict, load_constitution
from acgs_trainer.datasets import target_output
from acgs_trainer.prompting import parse_decision, parse_principles

CONSTITUTION_INVALID = "ConstitutionInvalid"


@dataclass(frozen=True)
class Judgement:
    decision: str | None
    principles: list[str]
    rules: list[str]
    reasoning: str
    compliance_score: float
    constitution_decision: str


def load(constitutional_hash: str, path: Path | None = None, pinned_digest: str | None = None) -> Constitution:
    """The constitution this server judges with: --constitution-path (the operator's ConfigMap),
    else ACGS_CONSTITUTION_PATH, else the packaged one; the trainer's loader refuses any content
    that is not the one pinned to `constitutional_hash`."""
    return load_constitution(path, expected_hash=constitutional_hash, pinned_digest=pinned_digest)


def judge(constitution: Constitution, scenario: Mapping[str, Any], generated_text: str) -> Judgement:
    decision = parse_decision(generated_text)
    principles = parse_principles(generated_text, constitution.principles)
    verdict = constitution.evaluate(scenario)
    score = 1.0 if decision == verdict.decision else 0.0
    if decision is None:
        return Judgement(None, principles, [], "The model produced no decision; the constitution derives "
                         f"{verdict.decision}.", score, verdict.decision)
    setting = [r for r in constitution.rules if r.decision == decision and r.fires(scenario)]
    named = [r for r in setting if r.principle in principles]
    rules = [r.id for r in (named or setting)]
    if rules or decision == verdict.decision:
        basis = Verdict(decision, tuple(principles), tuple(rules))
        reasoning = str(target_output(basis, constitution)["reasoning"])
    else:
        derived = ", ".join(verdict.rules) or "no rule fires"
        reasoning = (f"No constitutional rule supports {decision} on the fields given; the constitution "
                     f"derives {verdict.decision} ({derived}).")
    return Judgement(decision, principles, rules, reasoning, score, verdict.decision)


__all__ = ["CONSTITUTION_INVALID", "ConstitutionError", "Judgement", "judge", "load"]
