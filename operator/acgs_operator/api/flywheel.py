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


class RunPhase(str, Enum):
    # Recorded, waiting for the evaluation step, which is not built yet (docs/flywheel.md).
    PENDING = "Pending"


class FlywheelRun(ApiModel):
    """One turn of the loop, on a fixed snapshot of the interaction log."""

    id: str = Field(description="Run id, unique in the policy.")
    phase: str = Field(description="Pending: recorded, awaiting evaluation (not built yet).")
    trigger: str = Field(description="Threshold (minRecords reached) or RunNow (the acgs.io/run-now annotation).")
    started: str = Field(description="When the run was recorded (RFC 3339).")
    records: int = Field(ge=0, description="Usable records in the snapshot.")
    snapshot_digest: str = Field(description="sha256 over the snapshot's records (acgs-data flywheel-collect).")


class FlywheelPolicyStatus(StatusBase):
    """phase: Collecting, Evaluating, Recommending, Idle or Failed (see docs/flywheel.md)."""

    records_seen: int | None = Field(default=None, ge=0, description="Records in the closed log files.")
    records_usable: int | None = Field(default=None, ge=0, description="Records a run may use.")
    records_excluded: dict[str, int] = Field(default_factory=dict, description="Records left out, by reason.")
    snapshot_digest: str | None = Field(default=None, description="Digest of the usable records last collected.")
    last_collected: str | None = Field(default=None, description="When the log was last collected.")
    collector_job: str | None = Field(default=None, description="The collector Job now counting the log.")
    run_now_handled: str | None = Field(default=None, description="The acgs.io/run-now value last acted on.")
    current_run: FlywheelRun | None = Field(default=None, description="The run in progress (one at a time).")
    last_run: str | None = Field(default=None, description="When the last run started.")
    candidates: list[CandidateResult] = Field(default_factory=list, description="Latest candidate results.")
    recommendation: str | None = Field(default=None, description="ModelVersion recommended for promotion.")
