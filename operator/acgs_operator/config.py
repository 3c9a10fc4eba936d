"""Operator settings, from the environment (in a cluster: a ConfigMap mounted with envFrom)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from .api.common import HASH_PATTERN
from .constants import DEFAULT_CONSTITUTIONAL_HASH

ENV_PREFIX = "ACGS_"


class Settings(BaseModel):
    constitutional_hash: str = Field(default=DEFAULT_CONSTITUTIONAL_HASH, pattern=HASH_PATTERN)
    namespaces: list[str] = Field(default_factory=list, description="Watched namespaces; empty means all.")
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=9443, ge=1, le=65535)
    webhook_cert: Path | None = None
    webhook_key: Path | None = None
    health_port: int = Field(default=8081, ge=1, le=65535)
    metrics_port: int = Field(default=8082, ge=0, le=65535)
    trainer_image: str = "ghcr.io/acgs/trainer:0.1.0"
    server_image: str = "ghcr.io/acgs/server:0.1.0"
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
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="Node labels added to pods that request GPUs (GPU feature discovery's label).")

    @field_validator("namespaces", mode="before")
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
