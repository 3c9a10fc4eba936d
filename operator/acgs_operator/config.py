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

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [ns.strip() for ns in value.split(",") if ns.strip()]
        return value

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {name: env[ENV_PREFIX + name.upper()] for name in cls.model_fields
                  if ENV_PREFIX + name.upper() in env}
        return cls.model_validate(values)
