"""The predict bodies the seed documents show, mapped onto dataset records, and back.

The seeds (training-and-deployment-system.md) document bodies such as::

    POST /constitutional-ai/predict {"scenario": "ethical_dilemma", "context": {"user_role": "employee"},
                                     "user_request": "...", "constitutional_principles": [...]}
    POST /policy-governance/predict {"policy_type": "data_protection", "framework": "GDPR",
                                     "scope": "organization", "context": "Employee data access policy"}
    POST /multi-agent/predict       {"scenario": "conflict_resolution", "involved_agents": [...],
                                     "task_description": "...", "priority": "high"}

`record_from_seed_body` maps one onto the record a prompt is rendered from: a value that names a
schema field (by the field's own name, or by the seeds' name for it, e.g. `user_role` for
`actor_role`) becomes that scenario field, checked against the schema; everything else becomes free
text (`input.text`), which `prompting.format_prompt` puts into the prompt. `seed_body` is the
reverse; the generator uses it so the model is trained on the very prompts these bodies produce.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping

from .datasets import SCHEMAS

# The seeds' names for schema fields, wherever they appear in a body's `context`.
CONTEXT_ALIASES: dict[str, str] = {"user_role": "actor_role", "role": "actor_role",
                                   "sensitivity": "data_sensitivity"}
# Public agent names for generated multi-agent bodies (the seeds' example uses the first three).
AGENT_NAMES: tuple[str, ...] = ("ethics", "legal", "operational", "security", "privacy", "finance")
PRIORITIES: tuple[str, ...] = ("low", "medium", "high")


@dataclass(frozen=True)
class SeedShape:
    """Where one endpoint's seed body carries scenario fields."""

    label_field: str | None = None  # the body's `scenario` label is this field when it is a valid choice
    fields: tuple[str, ...] = ()  # top-level keys that are schema fields by name
    count_field: str | None = None  # `involved_agents`' length is this integer field
    text_keys: tuple[str, ...] = ()  # top-level free text, in prompt order


SEED_SHAPES: dict[str, SeedShape] = {
    "constitutional_ai": SeedShape(label_field="action",
                                   text_keys=("user_request", "constitutional_principles")),
    "policy_governance": SeedShape(fields=("policy_type", "framework", "scope")),
    "multi_agent_coordination": SeedShape(label_field="coordination", count_field="agent_count",
                                          text_keys=("task_description", "priority")),
}


class SeedBodyError(ValueError):
    """A value in a seed body names a schema field but is not valid for it."""

    def __init__(self, field_path: str, message: str, value: Any) -> None:
        super().__init__(f"{field_path}={value!r}: {message}")
        self.field, self.value = field_path, value


def _checked(dataset_type: str, name: str, value: Any, where: str) -> Any:
    spec = SCHEMAS[dataset_type][name]
    why = spec.problem(value)
    if why is None and spec.kind in ("int", "float") and not spec.lo <= value <= spec.hi:
        why = f"expected a number from {spec.lo:g} to {spec.hi:g}"
    if why is not None:
        raise SeedBodyError(where, f"{why} (the {name!r} field of {dataset_type})", value)
    return value


# Keys whose value enters the text after a word saying what it is ("priority high").
_LABELLED_TEXT = {"constitutional_principles": "principles", "priority": "priority", "involved_agents": "agents"}


def _words(value: Any) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def record_from_seed_body(dataset_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``{"type", "input": {"scenario": <fields the body gives>, "text": <the rest>}}``.

    Raises SeedBodyError naming the body's field when a value meant for a schema field is invalid.
    """
    shape, schema = SEED_SHAPES[dataset_type], SCHEMAS[dataset_type]
    scenario: dict[str, Any] = {}
    text: list[str] = []
    label = body.get("scenario")
    if label is not None:
        spec = schema.get(shape.label_field or "")
        if spec is not None and label in spec.choices:
            scenario[str(shape.label_field)] = label
        else:
            text.append(f"scenario {label}")
    for name in shape.fields:
        if body.get(name) is not None:
            scenario[name] = _checked(dataset_type, name, body[name], name)
    if shape.count_field and body.get("involved_agents") is not None:
        agents = body["involved_agents"]
        scenario[shape.count_field] = _checked(dataset_type, shape.count_field, len(agents), "involved_agents")
        text.append(f"agents {_words(agents)}")
    context = body.get("context")
    if isinstance(context, Mapping):
        for key, value in context.items():
            target = CONTEXT_ALIASES.get(str(key), str(key))
            if target in schema:
                if target in scenario and scenario[target] != value:
                    raise SeedBodyError(f"context.{key}", f"contradicts {target}={scenario[target]!r} given elsewhere",
                                        value)
                scenario[target] = _checked(dataset_type, target, value, f"context.{key}")
            else:
                text.append(f"{key} {_words(value)}")
    elif context is not None:
        text.append(str(context))
    for key in shape.text_keys:
        if body.get(key) is not None:
            label = _LABELLED_TEXT.get(key)
            text.append(f"{label} {_words(body[key])}" if label else _words(body[key]))
    return {"type": dataset_type, "input": {"scenario": scenario, "text": " ".join(text)}}


def missing_fields(dataset_type: str, scenario: Mapping[str, Any]) -> list[str]:
    """Schema fields a (seed-shaped) request did not give: the model judged without them."""
    return [name for name in SCHEMAS[dataset_type] if name not in scenario]


def seed_body(record: Mapping[str, Any]) -> dict[str, Any]:
    """A generated record as the seed body of its endpoint, carrying every scenario field, with
    the record's request as the free text. Deterministic per record id."""
    dataset_type = str(record["type"])
    shape = SEED_SHAPES[dataset_type]
    scenario = dict(record["input"]["scenario"])
    request = str(record["input"].get("request") or "")
    rng = random.Random(f"seed-body:{record.get('id')}")
    body: dict[str, Any] = {}
    if shape.label_field:
        body["scenario"] = scenario.pop(shape.label_field)
    for name in shape.fields:
        body[name] = scenario.pop(name)
    if shape.count_field:
        body["involved_agents"] = rng.sample(AGENT_NAMES, scenario.pop(shape.count_field))
    context: dict[str, Any] = {}
    for name, value in scenario.items():
        alias = next((a for a, target in CONTEXT_ALIASES.items() if target == name and a != "role"), name)
        context[alias] = value
    if dataset_type == "constitutional_ai":
        body.update(context=context, user_request=request)
        # The requester's principles are independent of the verdict: the model must not learn to copy them.
        principles = ("privacy", "transparency", "safety", "accountability", "fairness")
        body["constitutional_principles"] = sorted(rng.sample(principles, rng.randint(1, 3)))
    elif dataset_type == "policy_governance":
        body["context"] = {**context, "description": request}
    else:
        body.update(context=context, task_description=request, priority=rng.choice(PRIORITIES))
    return body


def seed_shaped_input(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``input`` of ``record`` as its seed body maps it: the same scenario plus the body's text."""
    mapped = record_from_seed_body(str(record["type"]), seed_body(record))["input"]
    return {**record["input"], "text": mapped["text"]}
