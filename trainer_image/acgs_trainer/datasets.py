"""The six dataset types: scenario schemas, rule-derived generation, and record validation.

A record is::

    {"id": str, "type": <dataset type>, "constitutional_hash": H,
     "input": {"scenario": {field: value, ...}, "request": str, "constitutional_hash": H,
               "text": str (only seed-shaped records, see SEED_SHAPED_EVERY)},
     "target_output": {"decision": "APPROVE|ESCALATE|DENY", "principles": [...], "rules": [...],
                       "reasoning": str, "constitutional_hash": H}}

Targets are never invented: ``target_output`` is what the constitution's rules derive from the
scenario, so the same rules can later score the model.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any, Mapping

from .constitution import CONSTITUTIONAL_HASH, DECISIONS, Constitution, Verdict

DATASET_TYPES: tuple[str, ...] = (
    "constitutional_ai",
    "policy_governance",
    "multi_agent_coordination",
    "performance_optimization",
    "transformer_efficiency",
    "wina_optimization",
)


@dataclass(frozen=True)
class FieldSpec:
    kind: str  # "choice" | "bool" | "float" | "int"
    choices: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    p_true: float = 0.5
    lo: float = 0.0
    hi: float = 1.0

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choices(self.choices, weights=self.weights or None)[0]
        if self.kind == "bool":
            return rng.random() < self.p_true
        if self.kind == "int":
            return rng.randint(int(self.lo), int(self.hi))
        return round(rng.uniform(self.lo, self.hi), 1)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid for this field, or None."""
        if self.kind == "choice":
            return None if value in self.choices else f"expected one of {list(self.choices)}"
        if self.kind == "bool":
            return None if isinstance(value, bool) else "expected true or false"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "expected a number"
        if self.kind == "int" and int(value) != value:
            return "expected an integer"
        return None


def _choice(*choices: str, weights: tuple[float, ...] = ()) -> FieldSpec:
    return FieldSpec("choice", choices=choices, weights=weights)


def _bool(p_true: float) -> FieldSpec:
    return FieldSpec("bool", p_true=p_true)


# Probabilities are chosen so that roughly 40 % of generated scenarios are approved and each rule
# fires often enough for a model to learn it.
_COMMON: dict[str, FieldSpec] = {
    "actor_role": _choice("employee", "admin", "contractor", "external", "service_agent"),
    "data_sensitivity": _choice("public", "internal", "confidential", "restricted",
                                weights=(0.3, 0.3, 0.25, 0.15)),
    "consent": _bool(0.7),
    "risk_level": _choice("low", "medium", "high", "critical", weights=(0.35, 0.35, 0.2, 0.1)),
    "audit_logging": _bool(0.85),
    "human_oversight": _bool(0.8),
}
_FAIRNESS = {"affects_protected_group": _bool(0.3), "bias_tested": _bool(0.6)}
_ACCURACY = {"accuracy_drop_pct": FieldSpec("float", lo=0.0, hi=3.0)}

SCHEMAS: dict[str, dict[str, FieldSpec]] = {
    "constitutional_ai": {
        "action": _choice("data_access_request", "model_deployment", "content_moderation",
                          "automated_decision", "policy_change"),
        **_COMMON, "explanation_provided": _bool(0.8), **_FAIRNESS,
    },
    "policy_governance": {
        "framework": _choice("GDPR", "HIPAA", "SOX", "PCI-DSS"),
        "policy_type": _choice("data_protection", "access_control", "retention", "audit"),
        "scope": _choice("team", "organization", "global"),
        **_COMMON, **_FAIRNESS,
    },
    "multi_agent_coordination": {
        "coordination": _choice("task_allocation", "conflict_resolution", "consensus_building",
                                "resource_sharing"),
        "agent_count": FieldSpec("int", lo=2, hi=6),
        **_COMMON, "conflict": _bool(0.5), "consensus_reached": _bool(0.6),
    },
    "performance_optimization": {
        "optimization_target": _choice("latency", "throughput", "memory", "cache"),
        "latency_p99_ms": FieldSpec("float", lo=0.5, hi=12.0),
        **_COMMON, "disables_safety_checks": _bool(0.1), **_ACCURACY,
    },
    "transformer_efficiency": {
        "technique": _choice("performer_attention", "sparse_attention", "quantization", "pruning",
                             "distillation"),
        **_COMMON, "explanation_provided": _bool(0.8), "disables_safety_checks": _bool(0.1),
        **_ACCURACY,
    },
    "wina_optimization": {
        "sparsity": FieldSpec("float", lo=0.1, hi=0.9),
        **_COMMON, "compliance_preserved": _bool(0.9), **_ACCURACY,
    },
}


def target_output(verdict: Verdict, constitution: Constitution) -> dict[str, Any]:
    if verdict.rules:
        reasoning = "; ".join(
            f"{r} ({constitution.principles[r.split('.')[0]]})"
            if r.split(".")[0] in constitution.principles else r
            for r in verdict.rules
        )
    else:
        reasoning = "No constitutional rule is violated."
    return {
        "decision": verdict.decision,
        "principles": list(verdict.principles),
        "rules": list(verdict.rules),
        "reasoning": reasoning,
        "constitutional_hash": constitution.constitutional_hash,
    }


def _request_text(dataset_type: str, scenario: Mapping[str, Any]) -> str:
    subject = scenario.get("action") or scenario.get("framework") or scenario.get("coordination") \
        or scenario.get("optimization_target") or scenario.get("technique") or "wina_sparsity"
    return (f"A {scenario['actor_role']} asks to proceed with {subject} ({dataset_type}) at "
            f"{scenario['risk_level']} risk on {scenario['data_sensitivity']} data.")


# The scenario space is split in two halves by a hash of the scenario: built-in bases are
# pre-trained only on the PUBLIC half (modeling/bases.py), and `generate` (the sample and benchmark
# "private" data) draws only from the PRIVATE half, so a generated evaluation set never contains a
# scenario the base saw in pre-training.
PUBLIC, PRIVATE = "public", "private"


def scenario_partition(dataset_type: str, scenario: Mapping[str, Any]) -> str:
    key = json.dumps([dataset_type, scenario], sort_keys=True, separators=(",", ":"))
    return PUBLIC if hashlib.sha256(key.encode()).digest()[0] & 1 == 0 else PRIVATE


# Every n-th record of a type that has a seed endpoint is written as the seed documents' request
# body maps it (request_shapes): the same scenario plus the body's free text in the prompt, so the
# model is trained and evaluated on the bodies the server accepts on those endpoints.
SEED_SHAPED_EVERY = 3


def generate(dataset_type: str, size: int, constitution: Constitution, seed: int = 0,
             partition: str = PRIVATE) -> list[dict[str, Any]]:
    """``size`` scenarios of ``dataset_type`` from one half of the scenario space (see
    ``scenario_partition``) with rule-derived targets (deterministic per seed)."""
    from .request_shapes import SEED_SHAPES, seed_shaped_input  # it builds on SCHEMAS above

    if dataset_type not in SCHEMAS:
        raise ValueError(f"type={dataset_type!r}: expected one of {list(DATASET_TYPES)}")
    rng = random.Random(f"{dataset_type}:{seed}" if partition == PRIVATE
                        else f"{partition}:{dataset_type}:{seed}")
    records = []
    for i in range(size):
        scenario = {name: spec.sample(rng) for name, spec in SCHEMAS[dataset_type].items()}
        while scenario_partition(dataset_type, scenario) != partition:
            scenario = {name: spec.sample(rng) for name, spec in SCHEMAS[dataset_type].items()}
        records.append({
            "id": (f"{dataset_type}-{seed}-{i:06d}" if partition == PRIVATE
                   else f"{partition}-{dataset_type}-{seed}-{i:06d}"),
            "type": dataset_type,
            "constitutional_hash": constitution.constitutional_hash,
            "input": {
                "scenario": scenario,
                "request": _request_text(dataset_type, scenario),
                "constitutional_hash": constitution.constitutional_hash,
            },
            "target_output": target_output(constitution.evaluate(scenario), constitution),
        })
        if dataset_type in SEED_SHAPES and i % SEED_SHAPED_EVERY == SEED_SHAPED_EVERY - 1:
            records[-1]["input"] = seed_shaped_input(records[-1])
    return records


# Problem kinds. The filter revises the first three and drops records with the others.
MISSING_HASH = "missing_hash"
MISSING_TARGET = "missing_target"
TARGET_DISAGREES = "target_disagrees"
WRONG_HASH = "wrong_hash"
BAD_STRUCTURE = "bad_structure"
REVISABLE = frozenset({MISSING_HASH, MISSING_TARGET, TARGET_DISAGREES})


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str


@dataclass
class Check:
    problems: list[Problem] = field(default_factory=list)
    verdict: Verdict | None = None  # set when the scenario is well-formed

    def add(self, kind: str, message: str) -> None:
        self.problems.append(Problem(kind, message))


def _check_hash(check: Check, where: str, holder: Mapping[str, Any], expected: str,
                required: bool) -> None:
    if "constitutional_hash" not in holder:
        if required:
            check.add(MISSING_HASH, f"missing field {where}constitutional_hash")
        return
    actual = holder["constitutional_hash"]
    if actual != expected:
        check.add(WRONG_HASH, f"{where}constitutional_hash={actual!r}: expected {expected!r}")


def check_record(record: Any, constitution: Constitution,
                 expected_hash: str = CONSTITUTIONAL_HASH) -> Check:
    """Everything wrong with ``record``, and the constitution's verdict on its scenario."""
    check = Check()
    if not isinstance(record, Mapping):
        check.add(BAD_STRUCTURE, f"record is a {type(record).__name__}, expected an object")
        return check
    _check_hash(check, "", record, expected_hash, required=True)
    dataset_type = record.get("type")
    if dataset_type not in SCHEMAS:
        check.add(BAD_STRUCTURE, f"type={dataset_type!r}: expected one of {list(DATASET_TYPES)}")
    inp = record.get("input")
    if not isinstance(inp, Mapping) or not isinstance(inp.get("scenario"), Mapping):
        check.add(BAD_STRUCTURE, "missing field input.scenario (an object)")
    else:
        _check_hash(check, "input.", inp, expected_hash, required=False)
        scenario = inp["scenario"]
        if dataset_type in SCHEMAS:
            for name, spec in SCHEMAS[dataset_type].items():
                if name not in scenario:
                    check.add(BAD_STRUCTURE, f"missing field input.scenario.{name}")
                elif (why := spec.problem(scenario[name])) is not None:
                    check.add(BAD_STRUCTURE, f"input.scenario.{name}={scenario[name]!r}: {why}")
            if not any(p.kind == BAD_STRUCTURE for p in check.problems):
                check.verdict = constitution.evaluate(scenario)
    target = record.get("target_output")
    if not isinstance(target, Mapping) or "decision" not in target:
        check.add(MISSING_TARGET, "missing field target_output.decision")
        return check
    _check_hash(check, "target_output.", target, expected_hash, required=False)
    decision = target.get("decision")
    if decision not in DECISIONS:
        check.add(TARGET_DISAGREES,
                  f"target_output.decision={decision!r}: expected one of {list(DECISIONS)}")
    elif check.verdict is not None and (
        decision != check.verdict.decision
        or sorted(target.get("principles") or []) != list(check.verdict.principles)
    ):
        check.add(TARGET_DISAGREES,
                  f"target_output={decision!r} {sorted(target.get('principles') or [])}: the "
                  f"constitution derives {check.verdict.decision!r} "
                  f"{list(check.verdict.principles)} ({', '.join(check.verdict.rules) or 'no rule'})")
    return check
