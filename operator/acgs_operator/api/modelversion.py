"""ModelVersion: the registry record of one trained model. Immutable except its stage."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import Field, field_validator

from .common import (
    DIGEST_PATTERN,
    HASH_PATTERN,
    SEMVER_PATTERN,
    ApiModel,
    ObjectName,
    StatusBase,
    cel,
    round_to,
    round_up,
)


class Stage(str, Enum):
    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class ModelVersionPhase(str, Enum):
    PENDING = "Pending"  # not (yet) verified
    READY = "Ready"  # manifest, files and digest verified
    INVALID = "Invalid"  # verification failed, or the spec is invalid


class Artifact(ApiModel):
    uri: str = Field(
        min_length=1, pattern=r"^(pvc|file|s3|gs)://.+",
        description="Where the artifact lives: pvc://<claim>/<path>, file:///<path>, s3:// or gs://.",
    )
    digest: str = Field(pattern=DIGEST_PATTERN, description="Overall sha256 digest from the artifact's manifest.")


class Lineage(ApiModel):
    parent_version: str | None = Field(default=None, description="ModelVersion this one was trained from.")
    training_job: str | None = Field(default=None, description="TrainingJob that produced it.")
    data_digest: str | None = Field(default=None, description="sha256 of the training data after filtering.")


class Metrics(ApiModel):
    accuracy: float | None = Field(default=None, ge=0, le=1, description="Held-out accuracy.")
    compliance_score: float | None = Field(
        default=None, ge=0, le=1,
        description="Share of held-out scenarios where the model's decision agrees with the constitution's rules.",
    )
    eval_loss: float | None = Field(default=None, ge=0, description="Held-out loss.")
    epsilon: float | None = Field(default=None, ge=0, le=8, description="DP budget ε spent in training.")
    delta: float | None = Field(default=None, ge=0, le=1e-5, description="DP δ used in training.")
    base_compliance_score: float | None = Field(
        default=None, ge=0, le=1,
        description="The base model's own compliance score on the same held-out scenarios, before fine-tuning.",
    )
    base_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="The base model's own held-out accuracy, before fine-tuning."
    )

    @field_validator("accuracy", "compliance_score", "eval_loss", "base_compliance_score", "base_accuracy")
    @classmethod
    def _short(cls, value: float | None) -> float | None:
        return round_to(value)

    @field_validator("epsilon")
    @classmethod
    def _epsilon(cls, value: float | None) -> float | None:
        return round_up(value)


# Every spec field except `stage` is part of the record and may never change.
IMMUTABLE_FIELDS = ("constitutionalHash", "modelName", "version", "artifact", "baseModel", "lineage", "metrics")


def _immutability_rule() -> dict[str, Any]:
    parts = [f"(has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f}))"
             for f in IMMUTABLE_FIELDS]
    return {"rule": " && ".join(parts), "message": "ModelVersion spec is immutable except stage"}


class ModelVersionSpec(ApiModel):
    model_config = ApiModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": [_immutability_rule()]}}

    constitutional_hash: str = Field(pattern=HASH_PATTERN, description="Constitution the model was trained under.")
    model_name: ObjectName = Field(description="Model family, e.g. constitutional-ai.")
    version: str = Field(
        pattern=SEMVER_PATTERN, max_length=128, description="Semantic version, e.g. 1.2.0.",
        json_schema_extra=cel(f"self.matches(r'{SEMVER_PATTERN}')",
                              "version must be a semantic version MAJOR.MINOR.PATCH, e.g. 1.2.0",
                              replaces=("pattern",)),
    )
    artifact: Artifact = Field(description="The trained adapter and its manifest.")
    base_model: str = Field(min_length=1, description="Base model the adapter applies to.")
    lineage: Lineage = Field(default_factory=Lineage, description="Where the model came from.")
    metrics: Metrics = Field(default_factory=Metrics, description="Evaluation and privacy figures.")
    stage: Stage = Field(default=Stage.CANDIDATE, description="candidate, staging, production or archived.")


class ModelVersionStatus(StatusBase):
    """phase: Pending, Ready (manifest and digest verified) or Invalid."""

    verified_digest: str | None = Field(default=None, description="Digest the operator verified.")
    verified_at: str | None = Field(default=None, description="When the artifact was verified.")
    verified_metrics: Metrics | None = Field(
        default=None, description="Metrics and ε as the verified artifact's manifest records them; promotion "
        "gates use these, never spec.metrics.")
    stage_history: list[str] = Field(default_factory=list, max_length=50, description="Stage changes, newest last.")


def model_version_name(model_name: str, version: str) -> str:
    """Deterministic object name for a version: constitutional-ai-1-2-0."""
    return f"{model_name}-{version.replace('.', '-').replace('+', '-')}".lower()[:253]
