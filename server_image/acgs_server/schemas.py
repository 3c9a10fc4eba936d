"""Typed request/response bodies of the predict endpoints.

The scenario models are generated from the trainer's dataset schemas (`acgs_trainer.datasets
.SCHEMAS`), so the server accepts exactly the fields, choices and types the model was trained on
and a 400 names the offending field (e.g. `scenario.consent`). Unknown fields are rejected: a typo
silently ignored would change the decision without anyone noticing.

Request bodies:
  /constitutional-ai/predict, /policy-governance/predict, /multi-agent/predict:
      {"scenario": {...}, "request": "free text (optional, not prompted)", "constitutional_hash": "..."}
      or the seed documents' body of that endpoint (seed_bodies.py)
  /v1/predict: the structured body plus "type": one of the six dataset types.
Numbers are bounded by the schema's own ranges (the model never saw anything outside them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from acgs_server.errors import ConstitutionalHashMismatch, InvalidInput
from acgs_server.seed_bodies import SEED_BODY_MODELS, is_seed_shaped
from acgs_trainer.datasets import DATASET_TYPES, SCHEMAS, FieldSpec
from acgs_trainer.request_shapes import SeedBodyError, missing_fields, record_from_seed_body

__all__ = ["InvalidInput", "ENDPOINTS", "ParsedRequest", "PredictResponse", "parse_request", "warmup_records"]


def invalid_from_validation(error: ValidationError, prefix: str = "") -> InvalidInput:
    """pydantic's errors as one InvalidInput: the first bad field named, all listed."""
    details = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"])
        path = ".".join(p for p in (prefix, path) if p) or "body"
        # For a missing field pydantic's "input" is the parent object: not what the client needs.
        value = None if item["type"] == "missing" else _short(item.get("input"))
        details.append({"field": path, "message": item["msg"], "input": value})
    first = details[0] if details else {"field": prefix or "body", "message": "invalid"}
    return InvalidInput(str(first["field"]), f"{first['field']}: {first['message']}", details=details)


def _annotation(spec: FieldSpec) -> Any:
    if spec.kind == "choice":
        return Literal[spec.choices]  # type: ignore[valid-type]
    if spec.kind == "bool":
        return bool
    if spec.kind == "int":
        return int
    return float


def _scenario_model(dataset_type: str) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, spec in SCHEMAS[dataset_type].items():
        if spec.kind in ("int", "float"):
            # The schema's range: the rules and the training data know nothing outside it.
            fields[name] = (_annotation(spec), Field(..., ge=spec.lo, le=spec.hi, allow_inf_nan=False)
                            if spec.kind == "float" else Field(..., ge=int(spec.lo), le=int(spec.hi)))
        else:
            fields[name] = (_annotation(spec), ...)
    # strict: "yes" is not a bool and "3" is not a number; the prompt must reflect real values.
    config = ConfigDict(extra="forbid", strict=True)
    model_name = "".join(part.title() for part in dataset_type.split("_")) + "Scenario"
    return create_model(model_name, __config__=config, **fields)  # type: ignore[call-overload, no-any-return]


SCENARIO_MODELS: dict[str, type[BaseModel]] = {t: _scenario_model(t) for t in DATASET_TYPES}


class PredictRequest(BaseModel):
    """Common part of every predict body."""

    model_config = ConfigDict(extra="forbid")
    dataset_type: ClassVar[str] = ""

    request: str | None = Field(None, max_length=4000, description="Free-text request (not prompted; logged "
                                "only with --interaction-log-free-text).")
    constitutional_hash: str | None = Field(
        None, max_length=64, description="Must equal the server's constitutional hash (required unless "
        "--require-request-hash=false).")

    def task_name(self) -> str:
        return self.dataset_type

    def scenario_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def _endpoint_model(dataset_type: str, class_name: str) -> type[PredictRequest]:
    model = create_model(  # type: ignore[call-overload]
        class_name,
        __base__=PredictRequest,
        scenario=(SCENARIO_MODELS[dataset_type], Field(..., description=f"A {dataset_type} scenario.")),
    )
    model.dataset_type = dataset_type
    model.scenario_dict = lambda self: self.scenario.model_dump()  # type: ignore[method-assign, attr-defined]
    return model  # type: ignore[no-any-return]


ConstitutionalAIRequest = _endpoint_model("constitutional_ai", "ConstitutionalAIRequest")
PolicyGovernanceRequest = _endpoint_model("policy_governance", "PolicyGovernanceRequest")
MultiAgentRequest = _endpoint_model("multi_agent_coordination", "MultiAgentRequest")


class GenericPredictRequest(PredictRequest):
    """/v1/predict: any dataset type; the scenario is checked against that type's schema."""

    type: Literal[DATASET_TYPES] = Field(..., description="Dataset type of the scenario.")  # type: ignore[valid-type]
    scenario: dict[str, Any] = Field(..., description="Scenario fields of that type.")

    def task_name(self) -> str:
        return str(self.type)

    def scenario_dict(self) -> dict[str, Any]:
        return dict(self.scenario)


ENDPOINTS: dict[str, type[PredictRequest]] = {
    "/v1/predict": GenericPredictRequest,
    "/constitutional-ai/predict": ConstitutionalAIRequest,
    "/policy-governance/predict": PolicyGovernanceRequest,
    "/multi-agent/predict": MultiAgentRequest,
}


class PredictResponse(BaseModel):
    request_id: str
    type: str = Field(description="Dataset type the scenario was judged as.")
    decision: str | None = Field(description="APPROVE, ESCALATE or DENY; null if the model produced none.")
    reasoning: str = Field(description="The constitutional rules (and their principles) the decision rests on.")
    principles: list[str] = Field(description="Principles the model named.")
    rules: list[str] = Field(description="Constitution rules that fire on the scenario and set this decision.")
    compliance_score: float = Field(description="1.0 when the decision is the one the constitution's rules derive "
                                    "from the fields given, else 0.0.")
    constitution_decision: str = Field(description="The decision the constitution's rules derive.")
    missing_fields: list[str] = Field(description="Schema fields the request did not give (seed-shaped bodies).")
    generated_text: str
    model_name: str
    model_version: str
    digest: str
    constitutional_hash: str
    latency_ms: float


@dataclass(frozen=True)
class ParsedRequest:
    """A valid predict body as the dataset record the prompt is rendered from."""

    dataset_type: str
    scenario: dict[str, Any]
    # Structured bodies' `request` (never prompted) or a seed body's free text (prompted, `text`).
    free_text: str | None = None
    seed_shaped: bool = False
    missing: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        record_input: dict[str, Any] = {"scenario": self.scenario}
        if self.free_text:
            record_input["text" if self.seed_shaped else "request"] = self.free_text
        return {"type": self.dataset_type, "input": record_input}


def check_hash(given: Any, expected: str, required: bool) -> None:
    if given is None and not required:
        return
    if given != expected:
        shown = "missing" if given is None else repr(given)[:80]
        raise ConstitutionalHashMismatch(
            "constitutional_hash",
            f"constitutional_hash is {shown}: this server serves constitutional hash {expected!r}",
            _short(given),
        )


def _parse_seed_body(path: str, payload: dict[str, Any]) -> ParsedRequest:
    dataset_type, model = SEED_BODY_MODELS[path]
    try:
        body = model.model_validate(payload)
    except ValidationError as error:
        raise invalid_from_validation(error) from error
    try:
        record = record_from_seed_body(dataset_type, body.model_dump(exclude_none=True))
    except SeedBodyError as error:
        raise InvalidInput(error.field, str(error), _short(error.value)) from error
    scenario = record["input"]["scenario"]
    return ParsedRequest(dataset_type, scenario, record["input"]["text"] or None, seed_shaped=True,
                         missing=missing_fields(dataset_type, scenario))


def parse_request(path: str, payload: Any, expected_hash: str, require_hash: bool = True) -> ParsedRequest:
    """Validate a JSON body for `path`; raise InvalidInput naming the first bad field."""
    if not isinstance(payload, dict):
        raise InvalidInput("body", f"expected a JSON object, got {type(payload).__name__}", _short(payload))
    # First: a request for another constitution is refused whatever else is in it.
    check_hash(payload.get("constitutional_hash"), expected_hash, require_hash)
    if path in SEED_BODY_MODELS and is_seed_shaped(payload):
        parsed = _parse_seed_body(path, payload)
    else:
        try:
            structured = ENDPOINTS[path].model_validate(payload)
        except ValidationError as error:
            raise invalid_from_validation(error) from error
        if isinstance(structured, GenericPredictRequest):
            # The scenario's schema depends on `type`: check it second, keeping the "scenario." prefix.
            try:
                structured.scenario = SCENARIO_MODELS[structured.type].model_validate(structured.scenario).model_dump()
            except ValidationError as error:
                raise invalid_from_validation(error, prefix="scenario") from error
        parsed = ParsedRequest(structured.task_name(), structured.scenario_dict(), structured.request)
    return parsed


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 200 and not isinstance(value, Mapping) else text[:200]


def warmup_records() -> list[dict[str, Any]]:
    """One valid record per dataset type (first choice, false, lowest value) for the warm-up."""
    def value(spec: FieldSpec) -> Any:
        if spec.kind == "choice":
            return spec.choices[0]
        if spec.kind == "bool":
            return False
        return int(spec.lo) if spec.kind == "int" else float(spec.lo)

    return [{"type": t, "input": {"scenario": {n: value(s) for n, s in SCHEMAS[t].items()}}} for t in DATASET_TYPES]
