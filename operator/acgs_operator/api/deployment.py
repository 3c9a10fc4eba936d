"""Deployment (acgs.io): blue-green serving of a ModelVersion. Strategy names follow Argo Rollouts."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, model_validator

from .common import HASH_PATTERN, ApiModel, Labels, ObjectName, Resources, StatusBase
from .modelversion import Stage


class ModelSelector(ApiModel):
    model_name: ObjectName = Field(description="Model family to follow.")
    stage: Stage = Field(default=Stage.PRODUCTION, description="Serve the newest version in this stage.")


class ModelRef(ApiModel):
    """Name one ModelVersion, or follow a stage so promotions roll out without editing Git."""

    model_config = ApiModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": [{
        "rule": "has(self.versionRef) != has(self.selector)",
        "message": "exactly one of model.versionRef or model.selector must be set"}]}}

    version_ref: ObjectName | None = Field(default=None, description="Name of a ModelVersion to serve.")
    selector: ModelSelector | None = Field(default=None, description="Follow the newest ModelVersion in a stage.")

    @model_validator(mode="after")
    def _one_of(self) -> ModelRef:
        if (self.version_ref is None) == (self.selector is None):
            raise ValueError("exactly one of model.versionRef or model.selector must be set")
        return self


class BlueGreenStrategy(ApiModel):
    auto_promotion_enabled: bool = Field(default=True, description="Promote the preview once its checks pass.")
    auto_promotion_seconds: int | None = Field(
        default=None, ge=0, description="Promote this long after the preview is ready, even when paused."
    )
    preview_replica_count: int | None = Field(
        default=None, ge=1, description="Replicas of the preview color before promotion (default: replicas)."
    )
    scale_down_delay_seconds: int = Field(default=30, ge=0, description="Keep the old color this long after a switch.")
    post_promotion_checks: bool = Field(default=True, description="Check the new active color after the switch.")
    post_promotion_window_seconds: int = Field(
        default=15, ge=0, le=3600,
        description="After a switch, keep checking the new active color this long; a failure rolls back.",
    )
    progress_deadline_seconds: int = Field(
        default=600, ge=10, le=86400,
        description="The preview must be ready and checked within this many seconds, or promotion is blocked.",
    )


class Strategy(ApiModel):
    blue_green: BlueGreenStrategy = Field(default_factory=BlueGreenStrategy, description="Blue-green settings.")


class PromotionGates(ApiModel):
    min_compliance_score: float = Field(default=0.95, ge=0, le=1, description="ModelVersion metrics must reach this.")
    min_accuracy: float = Field(default=0.0, ge=0, le=1, description="ModelVersion metrics must reach this.")
    smoke_requests: int = Field(default=3, ge=0, le=100, description="Predictions sent to the preview pods.")


class PeerSelector(ApiModel):
    pod_selector: Labels = Field(default_factory=dict, description="Labels of client pods.")
    namespace_selector: Labels | None = Field(
        default=None, description="Labels of client namespaces (unset: the Deployment's own namespace)."
    )


class NetworkSpec(ApiModel):
    allowed_clients: list[PeerSelector] = Field(
        default_factory=list, description="Who may call the model (everyone else is denied)."
    )
    metrics_namespace: str | None = Field(
        default="monitoring", description="Namespace whose pods may scrape /metrics."
    )


class ScalingMetric(str, Enum):
    CPU = "cpu"  # average CPU utilisation, percent of the pod's CPU request (metrics-server)
    QUEUE_DEPTH = "queueDepth"  # acgs_server_queue_depth per pod (a custom metrics adapter)


class Autoscaling(ApiModel):
    """An autoscaling/v2 HorizontalPodAutoscaler on the active color (it follows each switch)."""

    model_config = ApiModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": [{
        "rule": "self.minReplicas <= self.maxReplicas",
        "message": "autoscaling.minReplicas must be at most autoscaling.maxReplicas"}]}}

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest pods of the active color.")
    max_replicas: int = Field(ge=1, le=1000, description="Most pods of the active color.")
    metric: ScalingMetric = Field(
        default=ScalingMetric.CPU,
        description="cpu (utilisation of the CPU request) or queueDepth (the server's acgs_server_queue_depth, "
                    "served to the HPA by a custom metrics adapter such as prometheus-adapter).")
    target: int = Field(
        ge=1, le=1000,
        description="cpu: average utilisation in percent of the request; queueDepth: average waiting requests per pod.")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"autoscaling.minReplicas {self.min_replicas} is above autoscaling.maxReplicas "
                             f"{self.max_replicas}; expected minReplicas <= maxReplicas")
        return self


class DeploymentSpec(ApiModel):
    constitutional_hash: str = Field(pattern=HASH_PATTERN, description="Constitution this deployment serves under.")
    model: ModelRef = Field(description="Which ModelVersion to serve.")
    replicas: int = Field(default=1, ge=0, le=1000,
                          description="Replicas of the active color (ignored when autoscaling is set).")
    autoscaling: Autoscaling | None = Field(
        default=None, description="Scale the active color with a HorizontalPodAutoscaler between min and max.")
    image: str | None = Field(default=None, description="Server image; defaults to the operator's configured image.")
    port: int = Field(default=8080, ge=1024, le=65535, description="Container port of the model server.")
    metrics_port: int = Field(
        default=9090, ge=1024, le=65535,
        description="Container port of the server's /metrics; scrapers may reach this port only, never predict.")
    resources: Resources = Field(default_factory=Resources, description="Compute per server pod.")
    strategy: Strategy = Field(default_factory=Strategy, description="Rollout strategy (blue-green).")
    promotion: PromotionGates = Field(default_factory=PromotionGates, description="Pre-promotion gates.")
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="Zero-trust network policy.")
    artifact_pvc: ObjectName | None = Field(
        default=None, description="PVC holding artifacts (pvc:// URIs); mounted read-only."
    )
    interaction_log_pvc: ObjectName | None = Field(
        default=None, description="PVC for interaction logs read by the flywheel (default: emptyDir)."
    )
    interaction_log_max_bytes: int | None = Field(
        default=None, ge=1024, le=1 << 30,
        description="Start a new interaction-log file past this size (the server's default: 64 MiB). A "
                    "FlywheelPolicy reads only closed files: a low-traffic Deployment sees its records sooner "
                    "with smaller files.",
    )

    @model_validator(mode="after")
    def _ports_differ(self) -> DeploymentSpec:
        if self.metrics_port == self.port:
            raise ValueError(f"metricsPort {self.metrics_port} equals port: /metrics must have its own "
                             "port so a scraper cannot reach the predict endpoints")
        return self


class Color(str, Enum):
    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        return Color.GREEN if self is Color.BLUE else Color.BLUE


class DeploymentPhase(str, Enum):
    PROGRESSING = "Progressing"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    PAUSED = "Paused"  # a preview passed its checks and waits for acgs.io/promote


class HistoryEntry(ApiModel):
    time: str = Field(description="When it happened (RFC 3339).")
    action: str = Field(description="Promoted, RolledBack, Aborted, Blocked or Undone.")
    model_version: str = Field(description="ModelVersion concerned.")
    color: Color | None = Field(default=None, description="Color concerned.")
    reason: str | None = Field(default=None, description="Why.")


class HeldBack(ApiModel):
    model_version: str = Field(
        description="ModelVersion the operator will not roll out (until retry or a new version).")
    reason: str = Field(description="CamelCase reason: a failed check, Aborted, Undone or RolledBack.")
    message: str = Field(default="", max_length=4096, description="What failed, for people.")
    time: str = Field(description="When it was held back (RFC 3339).")
    generation: int | None = Field(
        default=None, ge=0, description="metadata.generation it was held back at; a spec change retries it.")


class RolloutState(ApiModel):
    """The operator's bookkeeping of a blue-green rollout (read-only for users)."""

    target: str | None = Field(default=None, description="ModelVersion being rolled out into the preview color.")
    preview_since: str | None = Field(default=None, description="When the preview of `target` was started.")
    checks_passed_at: str | None = Field(default=None, description="When the preview passed its pre-promotion checks.")
    promote_approved: str | None = Field(default=None, description="ModelVersion a person approved (acgs.io/promote).")
    promoted_at: str | None = Field(default=None, description="When the active Service last switched colors.")
    post_checks_done: bool = Field(default=True, description="Post-promotion checks of the last switch finished.")
    previous_color: Color | None = Field(default=None, description="Color that served before the last switch.")
    previous_model_version: str | None = Field(default=None, description="ModelVersion served before the last switch.")
    scale_down_at: str | None = Field(default=None, description="When the previous color is scaled to zero.")
    held_back: HeldBack | None = Field(default=None, description="A version promotion is blocked for.")
    pinned_model_version: str | None = Field(
        default=None, description="Served instead of a held-back desired version (set by acgs.io/undo).")


class DeploymentStatus(StatusBase):
    """phase: Progressing, Healthy, Degraded or Paused."""

    active_color: Color | None = Field(default=None, description="Color behind the active Service.")
    active_model_version: str | None = Field(default=None, description="ModelVersion serving live traffic.")
    preview_model_version: str | None = Field(default=None, description="ModelVersion in the preview color.")
    active_service: str | None = Field(default=None, description="Address of the active Service.")
    preview_service: str | None = Field(default=None, description="Address of the preview Service.")
    desired_model_version: str | None = Field(default=None, description="ModelVersion the spec asks for now.")
    preview_color: Color | None = Field(default=None, description="Color running the preview, if any.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Ready pods of the active color.")
    history: list[HistoryEntry] = Field(
        default_factory=list, max_length=20, description="Promotions and rollbacks, newest last (bounded)."
    )
    rollout: RolloutState = Field(default_factory=RolloutState, description="Rollout bookkeeping.")
