"""Typed request/response bodies of the predict endpoints.

The scenario models are generated from the trainer's dataset schemas (`acgs_trainer.datasets
.SCHEMAS`), so the server accepts exactly the fields, choices and types the model was trained on
and a 400 names the offending field (e.g. `scenario.consent`). Unknown fields are rejected: a typo
silently ignored would change the decision without anyone noticing.

Request bodies:
  /constitutional-ai/predict, /policy-governance/predict, /multi-agent/predict:
      {"scenario": {...}, "request": "free text (optional)", "constitutional_hash": "... (optional)"}
  /v1/predict: the same plus "type": one of the six dataset types.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from acgs_trainer.datasets import DATASET_TYPES, SCHEMAS, FieldSpec


class InvalidInput(ValueError):
    """The body must be refused with 400 (KServe's InvalidInput); `body()` names the field."""

    def __init__(self, field: str, message: str, value: Any = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.field, self.message = field, message
        self.details = details if details is not None else [{"field": field, "message": message, "input": value}]

    @classmethod
    def from_validation(cls, error: ValidationError, prefix: str = "") -> "InvalidInput":
        details = []
        for item in error.errors(include_url=False):
            path = ".".join(str(part) for part in item["loc"])
            path = ".".join(p for p in (prefix, path) if p) or "body"
            # For a missing field pydantic's "input" is the parent object: not what the client needs.
            value = None if item["type"] == "missing" else _short(item.get("input"))
            details.append({"field": path, "message": item["msg"], "input": value})
        first = details[0] if details else {"field": prefix or "body", "message": "invalid"}
        return cls(first["field"], f"{first['field']}: {first['message']}", details=details)

    def body(self) -> dict[str, Any]:
        return {"error": {"type": "InvalidInput", "field": self.field, "message": self.message,
                          "details": self.details}}


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
            fields[name] = (_annotation(spec), Field(..., ge=-1e9, le=1e9))
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

    request: str | None = Field(None, max_length=4000, description="Free-text request (logged, not prompted).")
    constitutional_hash: str | None = Field(
        None, description="If given, must equal the server's constitutional hash.")

    def task_name(self) -> str:
        return self.dataset_type

    def scenario_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def check_hash(self, expected: str) -> None:
        if self.constitutional_hash is not None and self.constitutional_hash != expected:
            raise InvalidInput(
                "constitutional_hash",
                f"constitutional_hash={self.constitutional_hash!r}: expected {expected!r}",
                self.constitutional_hash,
            )

    def to_record(self) -> dict[str, Any]:
        """The dataset-record shape the trainer reads (`type` + `input`), minus the target."""
        record_input: dict[str, Any] = {"scenario": self.scenario_dict()}
        if self.request is not None:
            record_input["request"] = self.request
        return {"type": self.task_name(), "input": record_input}


def _endpoint_model(dataset_type: str, class_name: str) -> type[PredictRequest]:
    model = create_model(  # type: ignore[call-overload]
        class_name,
        __base__=PredictRequest,
        scenario=(SCENARIO_MODELS[dataset_type], Field(..., description=f"A {dataset_type} scenario.")),
    )
    model.dataset_type = dataset_type
    model.scenario_dict = lambda self: self.scenario.model_dump()
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
    generated_text: str
    model_name: str
    model_version: str
    digest: str
    constitutional_hash: str
    latency_ms: float


def parse_request(model: type[PredictRequest], payload: Any, expected_hash: str) -> PredictRequest:
    """Validate a JSON body into `model`; raise InvalidInput naming the first bad field."""
    if not isinstance(payload, dict):
        raise InvalidInput("body", f"expected a JSON object, got {type(payload).__name__}", _short(payload))
    try:
        parsed = model.model_validate(payload)
    except ValidationError as error:
        raise InvalidInput.from_validation(error) from error
    if isinstance(parsed, GenericPredictRequest):
        # The scenario's schema depends on `type`: check it second, keeping the "scenario." prefix.
        try:
            parsed.scenario = SCENARIO_MODELS[parsed.type].model_validate(parsed.scenario).model_dump()
        except ValidationError as error:
            raise InvalidInput.from_validation(error, prefix="scenario") from error
    parsed.check_hash(expected_hash)
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
