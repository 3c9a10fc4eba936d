"""The request bodies the seed documents show for the three named endpoints.

    /constitutional-ai/predict  {"scenario": "ethical_dilemma", "context": {...} or "...", "user_request": "...",
                                 "constitutional_principles": [...], "constitutional_hash": "..."}
    /policy-governance/predict  {"policy_type", "framework", "scope", "context", "constitutional_hash"}
    /multi-agent/predict        {"scenario", "involved_agents": [...], "task_description", "priority",
                                 "context", "constitutional_hash"}

These models bound every value (lengths, counts, scalar types); what the values mean is the
trainer's `request_shapes` (one mapping for the server and the generator): values naming a schema
field become that field, checked against the schema; the rest is free text for the prompt.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StringConstraints

Label = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
FreeText = Annotated[str, StringConstraints(max_length=4000)]
ContextValue = Union[StrictBool, StrictInt, StrictFloat, ShortText, Annotated[list[Label], Field(max_length=16)]]
Context = Union[Annotated[dict[Label, ContextValue], Field(max_length=32)], FreeText]

# Keys only a seed-shaped body has: a body with one of them (or a string `scenario`) is read as one.
SEED_KEYS = frozenset({"context", "user_request", "constitutional_principles", "policy_type", "framework",
                       "scope", "involved_agents", "task_description", "priority"})


class SeedBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    constitutional_hash: Label | None = Field(None, description="Must equal the server's constitutional hash.")
    context: Context | None = Field(None, description="Scenario fields by name (or the seeds' names) and free text.")


class ConstitutionalAISeedBody(SeedBody):
    scenario: Label = Field(description="An action of the schema, or a free label such as 'ethical_dilemma'.")
    user_request: FreeText | None = None
    constitutional_principles: Annotated[list[Label], Field(max_length=16)] | None = None


class PolicyGovernanceSeedBody(SeedBody):
    policy_type: Label
    framework: Label
    scope: Label | None = None


class MultiAgentSeedBody(SeedBody):
    scenario: Label = Field(description="A coordination kind of the schema, or a free label.")
    involved_agents: Annotated[list[Label], Field(max_length=16)] | None = None
    task_description: FreeText | None = None
    priority: Label | None = None


SEED_BODY_MODELS: dict[str, tuple[str, type[SeedBody]]] = {
    "/constitutional-ai/predict": ("constitutional_ai", ConstitutionalAISeedBody),
    "/policy-governance/predict": ("policy_governance", PolicyGovernanceSeedBody),
    "/multi-agent/predict": ("multi_agent_coordination", MultiAgentSeedBody),
}


def is_seed_shaped(payload: dict[str, Any]) -> bool:
    return isinstance(payload.get("scenario"), str) or any(key in payload for key in SEED_KEYS)
