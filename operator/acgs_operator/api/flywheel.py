"""FlywheelPolicy: production interactions → evaluate cheaper candidates → retrain → promote."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from .common import HASH_PATTERN, ApiModel, ObjectName, Resources, StatusBase

# The production model is scored as one more entry of status.candidates under this name, so no
# candidate may take it.
PRODUCTION = "production"


class Thresholds(ApiModel):
    min_records: int = Field(default=50, ge=1, description="Logged interactions needed before a run.")
    eval_size: int = Field(default=20, ge=1, description="Interactions held out to evaluate candidates.")
    val_ratio: float = Field(default=0.1, gt=0, lt=0.5, description="Share of the rest used for validation.")


class CandidateKind(str, Enum):
    FINE_TUNE = "FineTune"  # a DP LoRA fine-tune on the run's train split: a child TrainingJob → ModelVersion
    BASE = "Base"  # the base model as is
    IN_CONTEXT = "InContext"  # the base model with k labelled train records in the prompt


class Candidate(ApiModel):
    name: ObjectName = Field(description="Candidate name (unique in the policy; not 'production').")
    kind: CandidateKind = Field(default=CandidateKind.FINE_TUNE, description="FineTune, Base or InContext.")
    base_model: str = Field(min_length=1, description="Base model (as TrainingJob.spec.baseModel takes it).")
    relative_cost: float = Field(default=1.0, gt=0, description="Serving cost per request relative to the "
                                 "production model at equal latency.")
    lora_rank: int = Field(default=8, ge=1, le=256, description="LoRA rank (FineTune only).")
    in_context_examples: int = Field(default=4, ge=1, le=64,
                                     description="Labelled train records put in the prompt (InContext only).")
    max_steps: int | None = Field(default=None, ge=1, le=100_000,
                                  description="Optimizer steps of the fine-tune (FineTune only; default one epoch).")


class Acceptance(ApiModel):
    min_compliance_score: float = Field(default=0.95, ge=0, le=1, description="A winner must reach this.")
    min_accuracy_ratio: float = Field(
        default=0.95, gt=0, le=10, description="Accuracy relative to the production model a winner must reach."
    )
    max_cost_ratio: float = Field(default=1.0, gt=0, description="A winner costs at most this much relative: "
                                  "relativeCost × its latency / production latency.")


def _default_resources() -> Resources:
    return Resources(cpu="2", memory="4Gi", gpus=0)


class FlywheelPolicySpec(ApiModel):
    constitutional_hash: str = Field(pattern=HASH_PATTERN, description="Constitution the loop runs under.")
    deployment_ref: ObjectName = Field(description="acgs.io Deployment whose interactions feed the loop.")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="When a run starts and how data splits.")
    candidates: list[Candidate] = Field(default_factory=list, max_length=20, description="Cheaper models to try.")
    acceptance: Acceptance = Field(default_factory=Acceptance, description="What a winner must meet.")
    interval_seconds: int = Field(default=3600, ge=60, description="Minimum time between runs.")
    auto_promote: bool = Field(default=False, description="Promote a FineTune winner's ModelVersion to production.")
    privacy_epsilon: float = Field(default=8.0, gt=0, le=8, description="DP budget ε of each fine-tune.")
    record_epsilon_limit: float = Field(
        default=8.0, gt=0, le=64,
        description="Cumulative ε a record may reach across runs; a record that would pass it is retired "
                    "(not trained on again). The default lets a record train in one run at ε 8.")
    max_parallel: int = Field(default=2, ge=1, le=20, description="Candidates evaluated or trained at once.")
    seed: int = Field(default=42, ge=0, description="Seed of each run's split and in-context picks.")
    workspace_pvc: ObjectName | None = Field(
        default=None, description="Claim for run data (snapshots, splits, results, privacy ledger). Unset: the "
        "operator creates <policy>-workspace (1Gi, owned by the policy).")
    resources: Resources = Field(default_factory=_default_resources,
                                 description="Compute of the prepare and eval Jobs and the fine-tunes.")

    @model_validator(mode="after")
    def _candidate_names(self) -> FlywheelPolicySpec:
        names = [c.name for c in self.candidates]
        for i, name in enumerate(names):
            if name == PRODUCTION:
                raise ValueError(f"spec.candidates[{i}].name={name!r}: reserved for the production model; "
                                 "expected another name")
            if name in names[:i]:
                raise ValueError(f"spec.candidates[{i}].name={name!r}: already used by an earlier candidate; "
                                 "expected unique names")
        return self


class CandidateState(str, Enum):
    PENDING = "Pending"
    TRAINING = "Training"
    EVALUATING = "Evaluating"
    EVALUATED = "Evaluated"
    FAILED = "Failed"
    REJECTED = "Rejected"
    ACCEPTED = "Accepted"  # met the acceptance criteria, but another accepted candidate is cheaper
    WINNER = "Winner"


class CandidateResult(ApiModel):
    name: str = Field(description="Candidate name ('production' for the production model).")
    kind: str = Field(default="FineTune", description="FineTune, Base, InContext or Production.")
    state: str = Field(default="Pending", description="Pending, Training, Evaluating, Evaluated, Failed, "
                       "Rejected, Accepted or Winner.")
    job: str | None = Field(default=None, description="The eval Job scoring it.")
    training_job: str | None = Field(default=None, description="The TrainingJob fine-tuning it (FineTune).")
    model_version: str | None = Field(default=None, description="Its ModelVersion (FineTune, Production).")
    accuracy: float | None = Field(default=None, ge=0, le=1, description="Accuracy on the run's eval set.")
    compliance_score: float | None = Field(default=None, ge=0, le=1, description="Compliance on the eval set.")
    latency_ms: float | None = Field(default=None, ge=0, description="Mean latency per request (ms).")
    relative_cost: float | None = Field(default=None, gt=0, description="spec.candidates[].relativeCost.")
    cost_ratio: float | None = Field(default=None, ge=0, description="relativeCost × latency / production latency.")
    reasons: list[str] = Field(default_factory=list, description="Why it failed or was rejected.")


class FlywheelPolicyPhase(str, Enum):
    COLLECTING = "Collecting"  # counting the log; no run, no pending recommendation
    EVALUATING = "Evaluating"  # a run is in progress
    RECOMMENDING = "Recommending"  # the last run found a winner that is not promoted
    IDLE = "Idle"  # the last run's winner was promoted, or it found none
    FAILED = "Failed"  # the last run failed, or the log cannot be collected


class RunPhase(str, Enum):
    PREPARING = "Preparing"  # the prepare Job snapshots, judges and splits the log
    EVALUATING = "Evaluating"  # candidates train and are scored
    PROMOTING = "Promoting"  # autoPromote: the winner's ModelVersion moves to production
    SUCCEEDED = "Succeeded"  # decided (with or without a winner)
    FAILED = "Failed"


class FlywheelRun(ApiModel):
    """One turn of the loop, on a fixed snapshot of the interaction log."""

    id: str = Field(description="Run id, unique in the policy.")
    phase: str = Field(description="Preparing, Evaluating, Promoting, Succeeded or Failed.")
    trigger: str = Field(description="Threshold (minRecords reached) or RunNow (the acgs.io/run-now annotation).")
    started: str = Field(description="When the run was recorded (RFC 3339).")
    records: int = Field(ge=0, description="Usable records when the run was triggered.")
    snapshot_digest: str = Field(description="sha256 over the collector's usable records at the trigger.")
    workspace: str | None = Field(default=None, description="The workspace claim of the run.")
    prepare_job: str | None = Field(default=None, description="The Job preparing the run's data.")
    prepared_digest: str | None = Field(default=None, description="sha256 of the snapshot the run used.")
    eval_digest: str | None = Field(default=None, description="sha256 of the eval set every candidate is scored on.")
    eval_records: int | None = Field(default=None, ge=0, description="Records in the eval set.")
    train_records: int | None = Field(default=None, ge=0, description="Records in the train set.")
    reason: str | None = Field(default=None, description="Why it failed, or the decision.")
    message: str | None = Field(default=None, description="What happened.")
    winner: str | None = Field(default=None, description="The winning candidate.")
    promoted: str | None = Field(default=None, description="The ModelVersion promoted to production.")
    finished: str | None = Field(default=None, description="When it finished (RFC 3339).")


class Budget(ApiModel):
    max_epsilon: float | None = Field(default=None, ge=0, description="Largest cumulative ε of any record.")
    mean_epsilon: float | None = Field(default=None, ge=0, description="Mean cumulative ε over the ledger.")
    retired_records: int | None = Field(default=None, ge=0, description="Records retired from training.")
    limit: float | None = Field(default=None, description="spec.recordEpsilonLimit when last charged.")


class FlywheelPolicyStatus(StatusBase):
    """phase: Collecting, Evaluating, Recommending, Idle or Failed (see docs/flywheel.md)."""

    records_seen: int | None = Field(default=None, ge=0, description="Records in the closed log files.")
    records_usable: int | None = Field(default=None, ge=0, description="Records a run may use.")
    records_excluded: dict[str, int] = Field(default_factory=dict, description="Records left out, by reason.")
    snapshot_digest: str | None = Field(default=None, description="Digest of the usable records last collected.")
    last_collected: str | None = Field(default=None, description="When the log was last collected.")
    collector_job: str | None = Field(default=None, description="The collector Job now counting the log.")
    run_now_handled: str | None = Field(default=None, description="The acgs.io/run-now value last acted on.")
    promote_handled: str | None = Field(default=None, description="The acgs.io/promote value last acted on.")
    current_run: FlywheelRun | None = Field(default=None, description="The run in progress (one at a time).")
    last_run: str | None = Field(default=None, description="When the last run started.")
    last_run_result: FlywheelRun | None = Field(default=None, description="The last finished run.")
    candidates: list[CandidateResult] = Field(default_factory=list, description="The latest run's candidates.")
    recommendation: str | None = Field(default=None, description="The last run's winner (candidate/ModelVersion).")
    estimated_cost_reduction: float | None = Field(default=None, description="1 − the winner's costRatio.")
    live_compliance: float | None = Field(default=None, ge=0, le=1,
                                          description="Share of judged records where the production model's "
                                          "logged decision agrees with the rule engine (the judge).")
    judged_records: int | None = Field(default=None, ge=0, description="Records behind liveCompliance.")
    budget: Budget | None = Field(default=None, description="Privacy budget spent on records across runs.")
