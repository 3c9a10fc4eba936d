"""TrainingJob: fine-tune a base model with LoRA (and optionally DP-SGD) into a new ModelVersion."""

from __future__ import annotations

from enum import Enum

from acgs_contract import progress
from pydantic import Field, field_validator, model_validator

from .common import HASH_PATTERN, ApiModel, ObjectName, Resources, StatusBase, cel, round_to, round_up

MAX_EPSILON = 8.0
MAX_DELTA = 1e-5


class DatasetType(str, Enum):
    CONSTITUTIONAL_AI = "constitutional_ai"
    POLICY_GOVERNANCE = "policy_governance"
    MULTI_AGENT_COORDINATION = "multi_agent_coordination"
    PERFORMANCE_OPTIMIZATION = "performance_optimization"
    TRANSFORMER_EFFICIENCY = "transformer_efficiency"
    WINA_OPTIMIZATION = "wina_optimization"


class VersionPolicy(str, Enum):
    MAJOR = "major"
    MINOR = "minor"
    PATCH = "patch"


class TrainingJobPhase(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    QUEUED = "Queued"  # suspended by Kueue until its Workload is admitted (spec.queueName)
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self.value in TERMINAL_PHASES


# A TrainingJob in one of these phases is finished: nothing moves it on (the contract's values,
# which the trainer's progress reports use too).
TERMINAL_PHASES = frozenset(progress.TERMINAL_PHASES)


class GenerateData(ApiModel):
    type: DatasetType = Field(description="Which of the six dataset types to generate.")
    size: int = Field(default=200, ge=10, le=1_000_000, description="Number of records to generate.")
    seed: int = Field(default=42, ge=0, description="Seed for reproducible generation.")


class DataSpec(ApiModel):
    """Where the training data comes from: a file on a volume, or generated in the pod."""

    path: str | None = Field(
        default=None, description="Path of a JSONL/JSON/CSV/Parquet file inside the data volume.",
        pattern=r"^/.*\.(jsonl|json|csv|parquet)$",
    )
    pvc: ObjectName | None = Field(default=None, description="PersistentVolumeClaim that holds `path`.")
    generate: GenerateData | None = Field(default=None, description="Generate a dataset instead of reading one.")
    val_ratio: float = Field(default=0.1, gt=0, lt=0.5, description="Share of records held out for validation.")
    eval_ratio: float = Field(default=0.1, gt=0, lt=0.5, description="Share of records held out for evaluation.")
    split_seed: int = Field(default=42, ge=0, description="Seed of the reproducible train/val/eval split.")

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.path is None) == (self.generate is None):
            raise ValueError("exactly one of data.path or data.generate must be set")
        return self

    @model_validator(mode="after")
    def _training_keeps_a_share(self) -> DataSpec:
        # The trainer (acgs_trainer.config) rejects this with InvalidConfig; say so at admission.
        if self.val_ratio + self.eval_ratio >= 0.9:
            raise ValueError(f"data.valRatio + data.evalRatio = {self.val_ratio + self.eval_ratio:g}: "
                             "must be < 0.9 (training needs the rest)")
        return self


class LoraSpec(ApiModel):
    r: int = Field(default=8, ge=1, le=256, description="LoRA rank.")
    alpha: int = Field(default=16, ge=1, le=1024, description="LoRA scaling (alpha).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA branch.")
    target_modules: list[str] | None = Field(
        default=None, min_length=1,
        description="Module names that receive LoRA adapters. Unset: every linear projection of a "
        "built-in base, peft's default modules for the architecture of any other base (a GPT-2 has "
        "no q_proj).",
    )


class TrainingSpec(ApiModel):
    max_steps: int | None = Field(default=None, ge=1, le=10_000_000, description="Optimizer steps; wins over epochs.")
    epochs: float = Field(default=1.0, gt=0, le=1000, description="Passes over the training split.")
    batch_size: int = Field(default=8, ge=1, le=4096, description="Examples per micro-batch (expected, with DP).")
    gradient_accumulation: int = Field(default=1, ge=1, le=1024, description="Micro-batches per optimizer step.")
    learning_rate: float = Field(default=2e-4, gt=0, le=1, description="Peak learning rate.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm (per-sample with DP).")
    seed: int = Field(default=42, ge=0, description="Training seed.")
    checkpoint_every: int = Field(default=50, ge=1, description="Checkpoint every N steps; a restarted pod resumes.")


class PrivacySpec(ApiModel):
    """DP-SGD (Opacus) on the LoRA parameters. The run halts at 95 % of the budget."""

    enabled: bool = Field(default=True, description="Train with DP-SGD.")
    target_epsilon: float = Field(
        default=8.0, gt=0, le=MAX_EPSILON, description="Privacy budget ε for the whole run (at most 8).",
        json_schema_extra=cel("self > 0.0 && self <= 8.0", "targetEpsilon must be > 0 and at most 8",
                              replaces=("maximum", "minimum", "exclusiveMinimum")),
    )
    target_delta: float = Field(
        default=1e-5, gt=0, le=MAX_DELTA, description="Privacy budget δ (at most 1e-5).",
        json_schema_extra=cel("self > 0.0 && self <= 0.00001", "targetDelta must be > 0 and at most 1e-5",
                              replaces=("maximum", "minimum", "exclusiveMinimum")),
    )
    noise_multiplier: float | None = Field(
        default=None, gt=0, le=100,
        description="Fixed noise multiplier instead of calibrating it to the budget; the run then halts "
                    "(PrivacyBudgetExhausted) before a step would spend more than 95 % of targetEpsilon.",
    )


class OutputSpec(ApiModel):
    pvc: ObjectName | None = Field(default=None, description="PersistentVolumeClaim the artifact is written to.")
    path: str = Field(default="/artifacts", pattern=r"^/", description="Mount path of the output volume.")


class TrainingJobSpec(ApiModel):
    constitutional_hash: str = Field(
        pattern=HASH_PATTERN, description="Hash of the constitution this job is governed by; must match the operator's."
    )
    model_name: ObjectName = Field(description="Model family this job produces a version of, e.g. constitutional-ai.")
    base_model: str = Field(
        default="builtin:tiny-llama", min_length=1,
        description="Base model: builtin:<name> (pre-trained on public data), pvc://<claim>/<path> or "
        "hf://<org>/<name> (from the operator's model-cache claim), or a path in the image.",
    )
    parent_version: ObjectName | None = Field(
        default=None, description="ModelVersion this training continues from (lineage and semver base)."
    )
    version_policy: VersionPolicy = Field(
        default=VersionPolicy.MINOR, description="Which semver part the new ModelVersion bumps."
    )
    data: DataSpec = Field(description="Training data.")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA adapter settings.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Optimizer and schedule.")
    privacy: PrivacySpec = Field(default_factory=PrivacySpec, description="Differential privacy.")
    resources: Resources = Field(
        default_factory=lambda: Resources(cpu="4", memory="16Gi", gpus=1),
        description="Compute for each trainer pod; with gpus > 1 torchrun starts one training process per GPU.",
    )
    workers: int = Field(
        default=1, ge=1, le=64,
        description="Trainer pods. More than 1: an Indexed Job of this many pods behind a headless Service, "
        "started by torchrun (c10d rendezvous at pod 0) as one data-parallel run; the batch is global and DP "
        "accounts for it as one process would. Across nodes the output claim must be ReadWriteMany.",
    )
    output: OutputSpec = Field(default_factory=OutputSpec, description="Where the artifact is written.")
    image: str | None = Field(default=None, description="Trainer image; defaults to the operator's configured image.")
    backoff_limit: int = Field(
        default=2, ge=0, le=10,
        description="Retries of retriable pod failures; with several workers, of the whole gang (the Job's pod "
        "backoff limit is this times workers: one failed worker fails its peers too).")
    active_deadline_seconds: int = Field(default=86400, ge=60, description="Hard limit on the Job's run time.")
    ttl_seconds_after_finished: int = Field(default=86400, ge=0, description="Keep the finished Job this long.")
    suspend: bool = Field(default=False, description="Create the Job suspended (queued).")
    queue_name: str | None = Field(default=None, description="Kueue LocalQueue; the Job is created suspended.")


class TrainingProgress(ApiModel):
    percent: float | None = Field(default=None, ge=0, le=100, description="Share of planned steps done.")
    step: int | None = Field(default=None, ge=0, description="Optimizer steps done.")
    total_steps: int | None = Field(default=None, ge=0, description="Planned optimizer steps.")
    loss: float | None = Field(default=None, description="Latest training loss.")
    epsilon: float | None = Field(default=None, ge=0, description="Privacy budget ε spent so far.")


    @field_validator("percent", "loss")
    @classmethod
    def _short(cls, value: float | None) -> float | None:
        return round_to(value, 2 if value is not None and value >= 10 else 4)

    @field_validator("epsilon")
    @classmethod
    def _epsilon(cls, value: float | None) -> float | None:
        return round_up(value)


class TrainingJobStatus(StatusBase):
    """phase: Pending, Queued, Running, Suspended, Succeeded or Failed."""

    job_name: str | None = Field(default=None, description="The batch/v1 Job running the trainer.")
    progress: TrainingProgress | None = Field(default=None, description="Live progress reported by the trainer.")
    start_time: str | None = Field(default=None, description="When the trainer started.")
    completion_time: str | None = Field(default=None, description="When the trainer finished.")
    model_version: str | None = Field(default=None, description="The ModelVersion this job produced.")
    artifact_digest: str | None = Field(default=None, description="sha256 digest of the produced artifact.")
