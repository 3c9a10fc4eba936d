"""Operator settings, from the environment (in a cluster: a ConfigMap mounted with envFrom)."""

from __future__ import annotations

import os
from pathlib import Path

from acgs_contract import constitution as contract_constitution
from acgs_contract import env
from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from .api.common import HASH_PATTERN
from .constants import DEFAULT_CONSTITUTIONAL_HASH
from .leader import Timing
from .policy import ImageAllowlist, repository

ENV_PREFIX = env.PREFIX


class Settings(BaseModel):
    constitutional_hash: str = Field(default=DEFAULT_CONSTITUTIONAL_HASH, pattern=HASH_PATTERN)
    # The constitution itself (in a cluster: the acgs-constitution ConfigMap, mounted) and the
    # digest of its content pinned to the hash; the operator refuses to start when they disagree.
    constitution_path: Path | None = Field(
        default=None, description="Constitution YAML; default: the contract's default constitution.")
    constitution_digest: str | None = Field(
        default=None, pattern=contract_constitution.CONTENT_DIGEST_PATTERN,
        description="Content digest pinned to constitutional_hash; needed only for a hash the "
        "contract does not pin (an amended constitution), and may not re-pin one it does.")
    namespaces: list[str] = Field(default_factory=list, description="Watched namespaces; empty means all.")
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=9443, ge=1, le=65535)
    webhook_cert: Path | None = None
    webhook_key: Path | None = None
    # Benchmark baseline only (bench/admission.py), unset in the manifests: also serve the same checks
    # through kopf's webhook inside the operator's event loop, on this port (the setup before the
    # webhook got its own process, servers/webhook.py).
    in_loop_webhook_port: int | None = Field(default=None, ge=1, le=65535)
    health_port: int = Field(default=8081, ge=1, le=65535)
    metrics_port: int = Field(default=8082, ge=0, le=65535)
    trainer_image: str = "ghcr.io/acgs/trainer:0.1.0"
    server_image: str = "ghcr.io/acgs/server:0.1.0"
    # Images a TrainingJob/Deployment may name in spec.image (policy.ImageAllowlist: "reg/path/" for a
    # registry path, "reg/path/name" for one repository, "sha256:<hex>" for one digest). Empty: only
    # the repositories of trainer_image and server_image.
    allowed_images: list[str] = Field(default_factory=list, description="Image allowlist entries.")
    # Serving (Deployment): where the operator runs, so the server NetworkPolicy admits its checks.
    operator_namespace: str = "acgs-system"
    operator_pod_label: str = Field(default="app.kubernetes.io/name=acgs-operator",
                                    pattern=r"^[^=]+=[^=]*$", description="key=value of the operator's pods.")
    # Serve only ModelVersions whose artifact the ModelVersion reconciler verified (status.phase Ready);
    # false also accepts Pending ones (never Invalid) - for clusters without that reconciler.
    require_verified_model_versions: bool = True
    check_timeout_seconds: float = Field(default=10.0, gt=0, description="HTTP timeout of one promotion check.")
    # Training: the progress endpoint trainers POST to, and where GPU pods go.
    progress_host: str = "0.0.0.0"
    progress_port: int = Field(default=8083, ge=0, le=65535, description="0 disables the endpoint.")
    progress_url: str | None = Field(
        default=None, description="Base URL pods reach the progress endpoint at; default "
        "http://127.0.0.1:<progress_port> (local runs). In a cluster: the operator Service.")
    progress_key: str | None = Field(
        default=None, description="HMAC key for per-job progress tokens; random per process when "
        "unset (tokens of running pods then stop working when the operator restarts).")
    progress_min_interval: float = Field(default=2.0, ge=0, description="Seconds between writes per job.")
    model_cache_pvc: str | None = Field(
        default=None, description="Claim holding a Hugging Face hub cache; trainers resolve "
        "baseModel hf://org/name from it (mounted read-only). Unset: hf:// names fail clearly.")
    # Monitoring: trainers serve Prometheus metrics on this port (0: none), and the NetworkPolicies
    # admit scrapes from this namespace (empty: from nowhere).
    trainer_metrics_port: int = Field(default=9090, ge=0, le=65535)
    monitoring_namespace: str = Field(default="monitoring", pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    # High availability: replicas elect a leader on a Lease in operator_namespace (leader.py); only
    # the leader reconciles (both serve the webhook). Off: this process reconciles at once (one replica only).
    leader_election: bool = True
    leader_identity: str | None = Field(
        default=None, description="This replica's name in the Lease (in a cluster: the pod name); default host-pid.")
    leader_lease_seconds: float = Field(default=15.0, gt=0, description="A silent leader's Lease expires after this.")
    leader_renew_deadline_seconds: float = Field(
        default=10.0, gt=0, description="A leader that cannot renew for this long exits (below the lease time).")
    leader_retry_seconds: float = Field(default=2.0, gt=0, description="Between Lease attempts and renewals.")
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="Node labels added to pods that request GPUs (GPU feature discovery's label).")

    @field_validator("namespaces", "allowed_images", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [ns.strip() for ns in value.split(",") if ns.strip()]
        return value

    @field_validator("gpu_node_selector", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        if isinstance(value, str):  # "k=v,k2=v2"
            return dict(p.strip().split("=", 1) for p in value.split(",") if p.strip())
        return value

    @model_validator(mode="after")
    def _own_images_allowed(self) -> Settings:
        for name in ("trainer_image", "server_image"):
            problem = self.image_allowlist.problem(f"ACGS_{name.upper()}", getattr(self, name))
            if problem:
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _leader_timing_is_safe(self) -> Settings:
        self.leader_timing  # noqa: B018  (raises ValueError naming the three settings)
        return self

    @property
    def leader_timing(self) -> Timing:
        try:
            return Timing(self.leader_lease_seconds, self.leader_renew_deadline_seconds, self.leader_retry_seconds)
        except ValueError as exc:
            raise ValueError(f"ACGS_LEADER_LEASE_SECONDS={self.leader_lease_seconds}, ACGS_LEADER_RENEW_DEADLINE_"
                             f"SECONDS={self.leader_renew_deadline_seconds}, ACGS_LEADER_RETRY_SECONDS="
                             f"{self.leader_retry_seconds}: {exc}") from None

    @property
    def image_allowlist(self) -> ImageAllowlist:
        entries = self.allowed_images or [repository(self.trainer_image), repository(self.server_image)]
        return ImageAllowlist(tuple(dict.fromkeys(entries)))

    _constitution_text: str = PrivateAttr(default="")
    _constitution_content_digest: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _constitution_is_pinned(self) -> Settings:
        if self.constitution_path is None:
            text = contract_constitution.default_text()
        else:
            try:
                text = self.constitution_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"constitution_path={str(self.constitution_path)!r}: cannot read: "
                                 f"{exc.strerror or exc}") from exc
        origin = f"constitution {self.constitution_path or '(contract default)'}"
        try:
            actual = contract_constitution.content_digest_of_text(text)
            contract_constitution.check_content(self.constitutional_hash, actual,
                                                self.constitution_digest, origin=origin)
        except ValueError as exc:
            raise ValueError(str(exc)) from exc
        self._constitution_text, self._constitution_content_digest = text, actual
        return self

    @property
    def constitution_text(self) -> str:
        """The constitution's YAML, whose content is pinned to ``constitutional_hash``."""
        return self._constitution_text

    @property
    def constitution_content_digest(self) -> str:
        return self._constitution_content_digest

    @property
    def operator_pod_labels(self) -> dict[str, str]:
        key, _, value = self.operator_pod_label.partition("=")
        return {key: value}

    @property
    def progress_base_url(self) -> str:
        return (self.progress_url or f"http://127.0.0.1:{self.progress_port}").rstrip("/")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {name: env[ENV_PREFIX + name.upper()] for name in cls.model_fields
                  if ENV_PREFIX + name.upper() in env}
        return cls.model_validate(values)
