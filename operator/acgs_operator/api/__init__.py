"""The acgs.io/v1alpha1 API: pydantic models for spec and status, and the kinds' CRD metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .deployment import DeploymentSpec, DeploymentStatus
from .flywheel import FlywheelPolicySpec, FlywheelPolicyStatus
from .modelversion import ModelVersionSpec, ModelVersionStatus
from .trainingjob import TrainingJobSpec, TrainingJobStatus


def column(name: str, path: str, type_: str = "string", priority: int = 0, description: str = "") -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    if description:
        col["description"] = description
    return col


PHASE = column("Phase", ".status.phase", description="Lifecycle phase")
AGE = column("Age", ".metadata.creationTimestamp", "date")
MESSAGE = column("Message", ".status.message", priority=1)


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    printer_columns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def singular(self) -> str:
        return self.kind.lower()


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        "TrainingJob", "trainingjobs", ("tj",), TrainingJobSpec, TrainingJobStatus,
        "A LoRA fine-tuning run (optionally with DP-SGD) that produces a ModelVersion.",
        [
            column("Model", ".spec.modelName"),
            PHASE,
            column("Progress", ".status.progress.percent", "number", description="Percent of steps done"),
            column("Epsilon", ".status.progress.epsilon", "number", description="DP budget spent"),
            column("Version", ".status.modelVersion", description="ModelVersion produced"),
            column("Loss", ".status.progress.loss", "number", priority=1),
            column("Job", ".status.jobName", priority=1),
            MESSAGE,
            AGE,
        ],
    ),
    KindInfo(
        "ModelVersion", "modelversions", ("mv",), ModelVersionSpec, ModelVersionStatus,
        "The registry record of a trained model: semver, artifact digest, lineage, metrics and stage.",
        [
            column("Model", ".spec.modelName"),
            column("Version", ".spec.version"),
            column("Stage", ".spec.stage"),
            PHASE,
            column("Compliance", ".spec.metrics.complianceScore", "number"),
            column("Accuracy", ".spec.metrics.accuracy", "number", priority=1),
            column("Epsilon", ".spec.metrics.epsilon", "number", priority=1),
            column("Digest", ".spec.artifact.digest", priority=1),
            AGE,
        ],
    ),
    KindInfo(
        "Deployment", "deployments", ("mdeploy",), DeploymentSpec, DeploymentStatus,
        "Blue-green serving of a ModelVersion with promotion gates, rollback and zero-trust networking.",
        [
            PHASE,
            column("Active", ".status.activeModelVersion"),
            column("Color", ".status.activeColor"),
            column("Preview", ".status.previewModelVersion"),
            column("Replicas", ".spec.replicas", "integer", priority=1),
            column("Service", ".status.activeService", priority=1),
            MESSAGE,
            AGE,
        ],
    ),
    KindInfo(
        "FlywheelPolicy", "flywheelpolicies", ("fwp",), FlywheelPolicySpec, FlywheelPolicyStatus,
        "Continuous improvement: evaluates cheaper candidates on production interactions and recommends a winner.",
        [
            column("Deployment", ".spec.deploymentRef"),
            PHASE,
            column("Records", ".status.recordsSeen", "integer"),
            column("Recommendation", ".status.recommendation"),
            column("Last Run", ".status.lastRun", "date", priority=1),
            MESSAGE,
            AGE,
        ],
    ),
)

BY_KIND = {k.kind: k for k in KINDS}
BY_PLURAL = {k.plural: k for k in KINDS}
