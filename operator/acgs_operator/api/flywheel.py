"""FlywheelPolicy: production interactions → evaluate cheaper candidates → retrain → promote."""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from .common import HASH_PATTERN, ApiModel, ObjectName, StatusBase


class Thresholds(ApiModel):
    min_records: int = Field(default=50, ge=1, description="Logged interactions needed before a run.")
    eval_size: int = Field(default=20, ge=1, description="Interactions held out to evaluate candidates.")
    val_ratio: float = Field(default=0.1, gt=0, lt=1, description="Share of the rest used for validation.")


class Candidate(ApiModel):
    name: ObjectName = Field(description="Candidate name (unique in the policy).")
    base_model: str = Field(min_length=1, description="Base model to fine-tune, e.g. a smaller builtin.")
    relative_cost: float = Field(default=1.0, gt=0, description="Serving cost relative to the current model.")
    lora_rank: int = Field(default=8, ge=1, le=256, description="LoRA rank for this candidate.")


class Acceptance(ApiModel):
    min_compliance_score: float = Field(default=0.95, ge=0, le=1, description="A winner must reach this.")
    min_accuracy_ratio: float = Field(
        default=0.95, gt=0, le=10, description="Accuracy relative to the current model a winner must reach."
    )
    max_cost_ratio: float = Field(default=1.0, gt=0, description="A winner costs at most this much relative.")


class FlywheelPolicySpec(ApiModel):
    constitutional_hash: str = Field(pattern=HASH_PATTERN, description="Constitution the loop runs under.")
    deployment_ref: ObjectName = Field(description="acgs.io Deployment whose interactions feed the loop.")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="When a run starts and how data splits.")
    candidates: list[Candidate] = Field(default_factory=list, max_length=20, description="Cheaper models to try.")
    acceptance: Acceptance = Field(default_factory=Acceptance, description="What a winner must meet.")
    interval_seconds: int = Field(default=3600, ge=60, description="Minimum time between runs.")
    auto_promote: bool = Field(default=False, description="Promote a winner's ModelVersion to production.")
    privacy_epsilon: float = Field(default=8.0, gt=0, le=8, description="DP budget ε for retraining runs.")


class CandidateResult(ApiModel):
    name: str = Field(description="Candidate name.")
    training_job: str | None = Field(default=None, description="TrainingJob evaluating it.")
    model_version: str | None = Field(default=None, description="ModelVersion it produced.")
    accuracy: float | None = Field(default=None, ge=0, le=1, description="Accuracy on held-out interactions.")
    compliance_score: float | None = Field(default=None, ge=0, le=1, description="Compliance on held-out data.")
    relative_cost: float | None = Field(default=None, gt=0, description="Cost relative to the current model.")
    score: float | None = Field(default=None, description="Ranking score.")
    state: str | None = Field(default=None, description="Pending, Training, Evaluated, Rejected or Winner.")


class FlywheelPolicyPhase(str, Enum):
    COLLECTING = "Collecting"
    EVALUATING = "Evaluating"
    RECOMMENDING = "Recommending"
    IDLE = "Idle"
    FAILED = "Failed"


class FlywheelPolicyStatus(StatusBase):
    """phase: Collecting, Evaluating, Recommending, Idle or Failed."""

    records_seen: int | None = Field(default=None, ge=0, description="Interactions logged so far.")
    last_run: str | None = Field(default=None, description="When the last evaluation started.")
    candidates: list[CandidateResult] = Field(default_factory=list, description="Latest candidate results.")
    recommendation: str | None = Field(default=None, description="ModelVersion recommended for promotion.")
