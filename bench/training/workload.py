"""Shared set-up for the training benchmark and its profiling script: one dataset, one tokenizer,
one base model + LoRA, built exactly as ``acgs-train`` builds them (same functions)."""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from acgs_trainer.bases import public_words
from acgs_trainer.checkpoint import Checkpointer
from acgs_trainer.config import TrainConfig, validate_config
from acgs_trainer.constitution import load_constitution
from acgs_trainer.datasets import DATASET_TYPES, generate
from acgs_trainer.modeling import ALL_LINEAR, apply_lora, build_base_model, build_tokenizer
from acgs_trainer.prompting import format_prompt, target_of
from acgs_trainer.training import EncodedData, Trainer, encode

LORA = dict(r=8, alpha=16, dropout=0.0, target_modules=ALL_LINEAR)


@dataclass
class Workload:
    base_model: str
    device: torch.device
    bf16: bool
    batch_size: int
    tokenizer: Any
    model: Any  # peft model, LoRA on all linear projections, never wrapped by Opacus
    data: EncodedData
    workdir: Path

    def config(self, *, dp: bool, steps: int) -> TrainConfig:
        return validate_config({
            "data": "bench", "output": str(self.workdir), "base_model": self.base_model,
            "dp": dp, "max_steps": steps, "batch_size": self.batch_size, "lr": 2e-3,
            "lr_schedule": "linear", "warmup_ratio": 0.0, "max_grad_norm": 1.0,
            "checkpoint_every": 0, "log_every": 10, "lora_r": LORA["r"],
            "lora_alpha": LORA["alpha"], "lora_dropout": LORA["dropout"], "seed": 0,
            "device": self.device.type, "bf16": self.bf16, "resume": False,
            # a fixed σ keeps the DP step's work independent of the calibration
            "noise_multiplier": 1.0 if dp else None})

    def fresh_model(self) -> Any:
        return copy.deepcopy(self.model).to(self.device)

    def trainer(self, *, dp: bool, steps: int, model: Any | None = None) -> Trainer:
        cfg = self.config(dp=dp, steps=steps)
        return Trainer(cfg, model if model is not None else self.fresh_model(), self.data,
                       self.device, Checkpointer(self.workdir / "ckpt", 1), "bench",
                       lambda *a: None)

    def real_tokens(self, idx: torch.Tensor) -> int:
        return int(self.data.attention_mask[idx].sum())


def build(base_model: str = "builtin:tiny-llama", records_per_type: int = 100,
          batch_size: int = 16, device: str | None = None) -> Workload:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    constitution = load_constitution()
    records = [r for t in DATASET_TYPES for r in generate(t, records_per_type, constitution, 0)]
    prompts, targets = [format_prompt(r) for r in records], [target_of(r) for r in records]
    tok = build_tokenizer(public_words(constitution))  # the built-in bases' public vocabulary
    # Seeded weights, not the public pre-training (bases.py): step time does not depend on them,
    # and a 100 M model is not pre-trained on CPU.
    base = build_base_model(base_model, len(tok), 0, tok)
    model = apply_lora(base, LORA["r"], LORA["alpha"], LORA["dropout"], LORA["target_modules"])
    data = encode(prompts, targets, tok, 128)
    workdir = Path(tempfile.mkdtemp(prefix="acgs-bench-training-"))
    return Workload(base_model, dev, dev.type == "cuda", batch_size, tok, model, data, workdir)
