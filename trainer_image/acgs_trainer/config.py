"""One training config: pydantic model filled from ``--config file.json`` and/or CLI flags.

Flags given on the command line override the file. File keys may be snake_case or camelCase (the
operator writes camelCase). Every validation error names the flag, the value and what was expected.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Literal, Sequence

from acgs_contract import env
from acgs_contract.constitution import CONSTITUTIONAL_HASH
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .exitcodes import ConfigError

MAX_EPSILON = 8.0
MAX_DELTA = 1e-5


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    data: str = Field(description="data file or directory (.jsonl/.json/.csv/.parquet), or "
                      "generated:<type>[,<type>...]:<size per type>")
    output: str = Field(description="output volume: checkpoints/, artifact/, result.json")
    base_model: str = "builtin:tiny-llama"
    constitution: str | None = Field(default_factory=lambda: os.environ.get(env.CONSTITUTION_PATH))
    constitutional_hash: str = CONSTITUTIONAL_HASH
    constitution_digest: str | None = Field(
        default_factory=lambda: os.environ.get(env.CONSTITUTION_DIGEST) or None,
        description="content digest pinned to the hash by the operator's configuration (default: "
        "the contract's pin)")
    max_steps: int | None = Field(default=None, gt=0)
    epochs: float | None = Field(default=None, gt=0)
    dp: bool = True
    target_epsilon: float = Field(default=MAX_EPSILON, gt=0, le=MAX_EPSILON)
    target_delta: float = Field(default=MAX_DELTA, gt=0, le=MAX_DELTA)
    noise_multiplier: float | None = Field(default=None, gt=0, description="override calibration")
    max_grad_norm: float = Field(default=1.0, gt=0)
    lora_r: int = Field(default=8, gt=0, le=256)
    lora_alpha: int = Field(default=16, gt=0)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_target_modules: list[str] | None = Field(
        default=None, description="default: all linear projections for built-in models, peft's "
        "per-architecture default otherwise")
    batch_size: int = Field(default=16, gt=0)
    grad_accum: int = Field(default=1, gt=0)
    lr: float = Field(default=2e-3, gt=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    seed: int = 0
    split_seed: int | None = Field(default=None, description="seed of the train/val/eval split "
                                   "(default: --seed)")
    val_ratio: float = Field(default=0.1, ge=0, lt=0.5)
    eval_ratio: float = Field(default=0.1, gt=0, lt=0.5)
    max_seq_len: int = Field(default=128, ge=16)
    checkpoint_every: int = Field(default=50, ge=0, description="0 disables checkpoints")
    keep_checkpoints: int = Field(default=2, ge=1)
    log_every: int = Field(default=10, gt=0)
    eval_max_examples: int = Field(default=200, gt=0)
    eval_batch_size: int = Field(default=64, gt=0)
    parent_version: str | None = None
    progress_url: str | None = Field(default_factory=lambda: os.environ.get(env.PROGRESS_URL))
    termination_log: str | None = Field(
        default_factory=lambda: os.environ.get(env.TERMINATION_LOG))
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = Field(default=True, description="bf16 autocast; used only on CUDA")
    resume: bool = True

    @field_validator("lora_target_modules", mode="before")
    @classmethod
    def _split_modules(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [m.strip() for m in v.split(",") if m.strip()] or None
        return v

    @model_validator(mode="after")
    def _one_length(self) -> "TrainConfig":
        if self.max_steps is None and self.epochs is None:
            self.epochs = 1.0
        if self.val_ratio + self.eval_ratio >= 0.9:
            raise ValueError(f"--val-ratio + --eval-ratio = {self.val_ratio + self.eval_ratio}: "
                             "must be < 0.9 (training needs the rest)")
        return self

    @property
    def data_split_seed(self) -> int:
        """--split-seed, or --seed when unset (the split every run before --split-seed used)."""
        return self.seed if self.split_seed is None else self.split_seed

    @property
    def output_dir(self) -> Path:
        return Path(self.output)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _explain(exc: ValidationError) -> str:
    lines = []
    names = {info.alias or n: n for n, info in TrainConfig.model_fields.items()}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = names.get(loc[0], loc[0]) if loc else ""
        ctx = err.get("ctx") or {}
        kind = err["type"]
        text = {
            "less_than_equal": f"must be ≤ {ctx.get('le')}",
            "less_than": f"must be < {ctx.get('lt')}",
            "greater_than": f"must be > {ctx.get('gt')}",
            "greater_than_equal": f"must be ≥ {ctx.get('ge')}",
            "extra_forbidden": "unknown setting",
            "missing": "required",
        }.get(kind, err["msg"])
        if field:
            value = "" if kind == "missing" else f"={err.get('input')!r}".replace("'", "")
            lines.append(f"{_flag(field)}{value}: {text}")
        else:
            lines.append(text)
    return "; ".join(lines)


def validate_config(values: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from exc


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        # Raise instead of exiting so the result/termination message is still written.
        raise ConfigError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="acgs-train", description="LoRA fine-tuning with optional DP-SGD under the "
                "ACGS constitution. `acgs-train verify --help`: check an artifact instead.",
                argument_default=argparse.SUPPRESS)
    p.add_argument("--config", help="JSON config file (flags override it)")
    bool_flags = {"dp", "bf16", "resume"}
    for name, info in TrainConfig.model_fields.items():
        help_text = info.description or ""
        if name in bool_flags:
            p.add_argument(_flag(name), action=argparse.BooleanOptionalAction, help=help_text)
        elif name == "lora_target_modules":
            p.add_argument(_flag(name), help="comma-separated module names. " + help_text)
        else:
            p.add_argument(_flag(name), help=help_text)
    return p


def parse_config(argv: Sequence[str] | None = None) -> TrainConfig:
    args = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    config_path = args.pop("config", None)
    if config_path:
        try:
            loaded = json.loads(Path(config_path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--config={config_path}: cannot read a JSON object: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config={config_path}: expected a JSON object")
        values.update(loaded)
    # Flags override the file; drop the file's spelling of the same key (snake or camel).
    for name, value in args.items():
        values.pop(to_camel(name), None)
        values[name] = value
    return validate_config(values)
