"""One configuration object for the model server, filled from CLI flags and ACGS_* environment.

Precedence: explicit CLI flag > environment variable > default. The pod spec the operator writes
sets environment variables; people running it by hand use flags.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any, Sequence

from acgs_contract import env
from acgs_contract.constitution import CONSTITUTIONAL_HASH as DEFAULT_CONSTITUTIONAL_HASH
from acgs_contract.manifest import DIGEST_PATTERN
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# /metrics is served only here, on its own listener, so a scraper a NetworkPolicy admits to this
# port cannot reach predict (a NetworkPolicy selects ports, never paths).
DEFAULT_METRICS_PORT = 9090


class ServerConfig(BaseModel):
    """Everything `acgs-serve` needs; `main(cfg)` reads nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    artifact: Path = Field(description="Directory holding the trainer's artifact (manifest + adapter).")
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the API (predict, probes, /models).")
    metrics_port: int = Field(
        DEFAULT_METRICS_PORT, ge=0, le=65535,
        description="TCP port of the separate /metrics listener (same host); 0 turns metrics off.")
    expected_digest: str | None = Field(
        None,
        description="Overall artifact digest ('sha256:<64 hex>') the server must find; None skips "
        "the comparison (the per-file sha256 check still runs).",
    )
    constitutional_hash: str = Field(
        DEFAULT_CONSTITUTIONAL_HASH, description="Constitutional hash the artifact must carry."
    )
    require_request_hash: bool = Field(
        True, description="Refuse (400) a predict request whose constitutional_hash is missing; a wrong "
        "one is always refused.")
    constitution_digest: str | None = Field(
        None, description="Content digest the operator's configuration pins to the hash; default: the "
        "contract's pin. The artifact's constitution (and --constitution-path) must have it.")
    constitution_path: Path | None = Field(
        None, description="A constitution file (the operator's ConfigMap) that must be the pinned content too.")
    model_name: str | None = Field(None, description="Name reported in /models and metrics; default from manifest.")
    model_version: str | None = Field(None, description="Version reported; default from manifest.")
    interaction_log_dir: Path | None = Field(
        None, description="Directory for interaction JSONL; None disables logging.")
    interaction_log_free_text: bool = Field(
        False, description="Also log the requests' free text (off: only the structured scenario is kept).")
    interaction_log_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Rotate a log file past this size.")
    interaction_log_max_files: int = Field(20, ge=1, description="Keep at most this many log files from this server.")
    interaction_log_queue_size: int = Field(10000, ge=1, description="Records buffered before new ones are dropped.")
    max_batch_size: int = Field(32, ge=1, le=1024, description="Most requests generated together.")
    max_batch_wait_ms: float = Field(0.0, ge=0, le=10000, description=(
        "Longest a request waits for batch-mates while the model is idle (0: an idle model takes what is "
        "queued at once; while it is busy, batches fill anyway)."))
    max_new_tokens: int = Field(16, ge=1, le=2048, description="Tokens generated per request.")
    min_new_tokens: int = Field(
        0, ge=0, le=2048,
        description="Generate at least this many tokens (ignore EOS before); for fixed-length benchmarks.")
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None = CPU count.")
    model_process: bool = Field(
        True, description="Run the model in its own process (HTTP and generate then do not share the GIL).")
    device: str = Field("cpu", description="torch device for the model ('cpu', 'cuda', 'cuda:0').")
    log_level: str = Field("INFO", description="Python logging level.")

    @field_validator("expected_digest", "constitution_digest")
    @classmethod
    def _digest_shape(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.match(DIGEST_PATTERN, value):
            raise ValueError(f"expected 'sha256:' followed by 64 lowercase hex digits, got {value!r}")
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> "ServerConfig":
        if self.metrics_port == self.port:
            raise ValueError(f"metrics_port={self.metrics_port}: must differ from port={self.port} "
                             "(metrics have their own listener)")
        return self

    @field_validator("log_level")
    @classmethod
    def _level_name(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {value!r}")
        return upper


# field name -> environment variable (the contract's names). Every field can come from the environment.
ENV_VARS: dict[str, str] = {name: env.server_var(name) for name in ServerConfig.model_fields}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acgs-serve",
        description="Serve an ACGS artifact (base model + LoRA adapter) after verifying its digest and "
        "constitutional hash. Every flag can also be set as an environment variable (shown in brackets).",
    )
    for name, field in ServerConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        # default=None so we can tell "not given" from "given"; the model supplies real defaults.
        parser.add_argument(flag, dest=name, default=None, help=f"{field.description} [{ENV_VARS[name]}]")
    return parser


def load_config(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> ServerConfig:
    """Parse flags and environment into a validated ServerConfig (raises ValidationError)."""
    env = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    for name in ServerConfig.model_fields:
        if args.get(name) is not None:
            values[name] = args[name]
        elif env.get(ENV_VARS[name], "") != "":
            values[name] = env[ENV_VARS[name]]
    return ServerConfig.model_validate(values)


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad field, naming the flag, the env var and what was wrong."""
    lines = []
    for item in error.errors():
        # A check across fields (loc empty) names the first field its message names.
        name = str(item["loc"][0]) if item["loc"] else str(item["msg"]).removeprefix("Value error, ").split("=")[0]
        flag = "--" + name.replace("_", "-")
        lines.append(f"{flag} [{ENV_VARS.get(name, '?')}]: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(lines)
