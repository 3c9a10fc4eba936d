"""``main(cfg)``: seed → data → filter → model → train → eval → save. Reads top to bottom."""

from __future__ import annotations

import datetime as dt
import logging
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from acgs_contract.result import BASE_METRICS

from . import __version__
from .artifact import compute_digest, write_artifact
from .bases import BaseBuildError, ensure_base
from .checkpoint import Checkpointer
from .config import TrainConfig
from .constitution import Constitution, ConstitutionError, load_constitution
from .distributed import Gang
from .dataio import DataReadError, dedupe, file_digest, read_records, records_digest, split
from .datasets import DATASET_TYPES, generate
from .evaluate import evaluate_generations, mean_loss
from .exitcodes import ConfigError, DataError, PrivacyBudgetExhausted
from .filtering import constitutional_filter
from .modeling import (ALL_LINEAR, apply_lora, build_base_model, count_parameters, is_builtin,
                       load_tokenizer, resolve_base_path, save_adapter)
from .prompting import format_prompt, target_of
from .reporting import ProgressReporter, TrainerMetrics
from .training import Trainer, encode

log = logging.getLogger(__name__)
GENERATED_PREFIX = "generated:"
MIN_RECORDS = 3


def load_data(cfg: TrainConfig, constitution: Constitution) -> tuple[list[Any], str]:
    """Records from a file/directory, or generated from ``generated:<type>[,<type>]:<size>``."""
    if cfg.data.startswith(GENERATED_PREFIX):
        spec = cfg.data[len(GENERATED_PREFIX):]
        types_text, _, size_text = spec.rpartition(":")
        types = DATASET_TYPES if types_text == "all" else tuple(types_text.split(","))
        if not size_text.isdigit() or int(size_text) < 1 or any(t not in DATASET_TYPES for t in types):
            raise ConfigError(f"--data={cfg.data}: expected generated:<type>[,<type>...]:<size> "
                              f"with types from {list(DATASET_TYPES)} or 'all'")
        records = [r for t in types for r in generate(t, int(size_text), constitution, cfg.seed)]
        return records, records_digest(records)
    try:
        return read_records(cfg.data), file_digest(cfg.data)
    except DataReadError as exc:
        raise DataError(f"--data: {exc}") from exc


def prepare_base(cfg: TrainConfig, constitution: Constitution, work: Path
                 ) -> tuple[Any, Any, Path, dict[str, Any]]:
    """(tokenizer, base model, base directory, what the manifest says about the base).

    Built-in bases come pre-trained on public data with a public vocabulary (bases.py): nothing
    of the private records shapes them, and the cached build is digest-checked on every load."""
    from transformers import AutoModelForCausalLM

    if not is_builtin(cfg.base_model):
        try:
            path = resolve_base_path(cfg.base_model)
            return (load_tokenizer(path), build_base_model(cfg.base_model, 0, cfg.seed), path,
                    {"architecture": _architecture(path)})
        except (ValueError, OSError) as exc:
            raise ConfigError(str(exc) if "--base-model" in str(exc)
                              else f"--base-model={cfg.base_model}: cannot load: {exc}") from exc
    try:
        built = ensure_base(cfg.base_model, constitution, work / "bases")
    except BaseBuildError as exc:
        raise ConfigError(str(exc)) from exc
    tokenizer = load_tokenizer(built.tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(str(built.base_dir), local_files_only=True)
    pretraining = {k: built.build[k] for k in ("corpusDigest", "vocabularyDigest", "recipe",
                                                "publicEvalMetrics")}
    return tokenizer, model, built.base_dir, {"pretraining": pretraining}


def _architecture(path: Path) -> str | None:
    import json

    architectures = json.loads((path / "config.json").read_text()).get("architectures") or [None]
    return architectures[0]


def main(cfg: TrainConfig) -> dict[str, Any]:
    try:
        gang = Gang.from_env()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        return _run(cfg, gang)
    finally:
        gang.stop()


def _run(cfg: TrainConfig, gang: Gang) -> dict[str, Any]:
    """Every rank trains; rank 0 alone scores, saves and reports (distributed.py)."""
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    try:
        constitution = load_constitution(cfg.constitution, cfg.constitutional_hash,
                                         cfg.constitution_digest)
    except ConstitutionError as exc:
        raise ConfigError(f"--constitution: {exc}") from exc
    metrics = TrainerMetrics(cfg.metrics_port if gang.local_rank == 0 else None)

    # data → dedupe → constitutional filter → split
    raw, source_digest = load_data(cfg, constitution)
    unique, duplicates = dedupe(raw)
    report = constitutional_filter(unique, constitution, cfg.constitutional_hash)
    counts = {**report.counts, "duplicatesRemoved": duplicates}
    for kind in ("kept", "revised", "dropped"):
        metrics.filter_records.labels(kind).set(counts[kind])
    if len(report.kept) < MIN_RECORDS:
        raise DataError(f"--data={cfg.data}: {len(report.kept)} usable records after the "
                        f"constitutional filter (need ≥ {MIN_RECORDS}); filter: {counts}; first "
                        f"problems: {report.examples[:3]}", filter=counts)
    parts = split(report.kept, cfg.data_split_seed, cfg.val_ratio, cfg.eval_ratio)
    data_digest = records_digest(report.kept)
    log.info("data: %d records (%d duplicates removed), split %s, digest %s", len(raw),
             duplicates, parts.sizes(), data_digest)

    # model: base (+ tokenizer) → LoRA
    device = gang.device(cfg.device in ("auto", "cuda") and torch.cuda.is_available())
    if cfg.device == "cuda" and device.type != "cuda":
        raise ConfigError("--device=cuda: no CUDA device is available")
    gang.start(device)
    tokenizer, base, base_dir, base_info = prepare_base(cfg, constitution, out / "work")
    total_params, _ = count_parameters(base)
    eval_records = parts.eval[: cfg.eval_max_examples]
    # The base's own score on the same held-out records: what the fine-tune adds is the difference.
    base_scores = (evaluate_generations(base.to(device), tokenizer, eval_records, constitution,
                                        cfg.eval_batch_size) if gang.is_main else {})
    base_scores.pop("confusion", None)
    targets = cfg.lora_target_modules or (ALL_LINEAR if is_builtin(cfg.base_model) else None)
    model = apply_lora(base, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, targets).to(device)
    # None means peft's default for the architecture; record what it chose.
    targets = sorted(model.peft_config["default"].target_modules)
    _, trainable = count_parameters(model)
    log.info("model %s: %d parameters, %d trainable (LoRA r=%d)", cfg.base_model, total_params,
             trainable, cfg.lora_r)

    # train
    def encode_split(records: list[dict[str, Any]]) -> Any:
        return encode([format_prompt(r) for r in records], [target_of(r) for r in records],
                      tokenizer, cfg.max_seq_len)

    train_data = encode_split(parts.train)
    progress = ProgressReporter(cfg.progress_url if gang.is_main else None)

    def on_log(step: int, total: int, loss: float | None, epsilon: float | None) -> None:
        metrics.step.set(step)
        metrics.total_steps.set(total)
        if loss is not None:
            metrics.loss.set(loss)
        if epsilon is not None:
            metrics.epsilon.set(epsilon)
        log.info("step %d/%d loss %s ε %s", step, total,
                 "n/a" if loss is None else f"{loss:.4f}",
                 "n/a" if epsilon is None else f"{epsilon:.4f}")
        progress.report("Running", step, loss, epsilon, f"step {step}/{total}")

    trainer = Trainer(cfg, model, train_data, device, Checkpointer(out / "checkpoints",
                      cfg.keep_checkpoints), data_digest, on_log, gang)
    progress.total_steps = trainer.total
    metrics.epsilon_target.set(cfg.target_epsilon if cfg.dp else 0)
    try:
        outcome = trainer.run()
    except PrivacyBudgetExhausted as exc:
        budget = trainer.budget
        exc.details.update(epsilon=budget.spent() if budget else None, steps=budget.steps
                           if budget else None, totalSteps=trainer.total)
        progress.report("Failed", budget.steps if budget else 0, None,
                        exc.details["epsilon"], str(exc), final=True)  # type: ignore[arg-type]
        raise
    finally:
        trainer.close()
    for seconds in outcome.step_seconds:
        metrics.step_seconds.observe(seconds)
    metrics.examples.inc(outcome.examples)
    if not gang.is_main:
        return {"message": f"rank {gang.rank} of {gang.world_size}: trained {outcome.steps} "
                           "steps on its share; rank 0 writes the artifact", "steps": outcome.steps}

    # evaluate on held-out data, from the model's own generations
    scores = evaluate_generations(model, tokenizer, eval_records, constitution, cfg.eval_batch_size)
    scores["evalLoss"] = mean_loss(model, encode_split(eval_records), device, cfg.eval_batch_size)
    if parts.val:
        scores["valLoss"] = mean_loss(model, encode_split(parts.val), device, cfg.eval_batch_size)
    scores["trainLoss"] = outcome.final_loss
    for name in ("complianceScore", "accuracy", "evalLoss"):
        metrics.eval_score.labels(name).set(scores[name])
    log.info("eval: compliance %.3f accuracy %.3f parse rate %.3f eval loss %.4f",
             scores["complianceScore"], scores["accuracy"], scores["parseRate"], scores["evalLoss"])

    # save: adapter + tokenizer (+ base weights for built-in bases) + manifest, atomically
    privacy: dict[str, Any] = outcome.budget.summary() if outcome.budget else {"enabled": False}
    bundled = is_builtin(cfg.base_model)

    def populate(tmp: Path) -> None:
        save_adapter(model, tmp / "adapter")
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        if bundled:
            shutil.copytree(base_dir, tmp / "base")
        (tmp / "constitution.yaml").write_text(
            Path(cfg.constitution).read_text() if cfg.constitution else _default_constitution())

    manifest = write_artifact(out / "artifact", populate, {
        "constitutional_hash": cfg.constitutional_hash,
        "base_model": {"name": cfg.base_model, "bundled": bundled,
                       "path": "base" if bundled else str(base_dir.resolve()),
                       "digest": compute_digest(base_dir), "parameters": total_params,
                       **base_info},
        "adapter": {"type": "lora", "path": "adapter", "r": cfg.lora_r, "alpha": cfg.lora_alpha,
                    "dropout": cfg.lora_dropout, "targetModules": sorted(targets or []),
                    "trainableParameters": trainable},
        "metrics": scores, "baseMetrics": base_scores, "privacy": privacy,
        "data": {"source": cfg.data, "sourceDigest": source_digest, "digest": data_digest,
                 "records": len(raw), "splitSizes": parts.sizes(),
                 "splitSeed": cfg.data_split_seed, "valRatio": cfg.val_ratio,
                 "evalRatio": cfg.eval_ratio, "filter": counts,
                 "types": dict(sorted(Counter(str(r["type"]) for r in report.kept).items()))},
        "training": {"steps": outcome.steps, "worldSize": gang.world_size, "plannedSteps": outcome.planned_steps,
                     "resumedFrom": outcome.resumed_from, "batchSize": cfg.batch_size,
                     "gradAccum": cfg.grad_accum, "lr": cfg.lr, "lrSchedule": cfg.lr_schedule,
                     "maxGradNorm": cfg.max_grad_norm, "seed": cfg.seed, "device": device.type,
                     "bf16": device.type == "cuda" and cfg.bf16,
                     "meanStepSeconds": (sum(outcome.step_seconds) / len(outcome.step_seconds)
                                         if outcome.step_seconds else None)},
        "constitution": {"version": constitution.version, "sha256": constitution.source_sha256,
                         "path": "constitution.yaml", "contentDigest": constitution.content_digest,
                         "principles": sorted(constitution.principles)},
        "parent_version": cfg.parent_version, "trainer_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })
    epsilon = privacy.get("epsilonSpent")
    message = (f"trained {outcome.steps} steps; compliance {scores['complianceScore']:.3f}, "
               f"accuracy {scores['accuracy']:.3f}" + (f", ε {epsilon:.3f}/{cfg.target_epsilon}"
                                                      if epsilon is not None else ", no DP"))
    if gang.active:
        message += f" on {gang.world_size} processes"
    progress.report("Succeeded", outcome.steps, outcome.final_loss, epsilon, message, final=True)
    return {"digest": manifest.digest, "artifactPath": str((out / "artifact").resolve()),
            "metrics": {k: v for k, v in scores.items() if k != "confusion"},
            "baseMetrics": {k: base_scores[k] for k in BASE_METRICS},
            "epsilon": epsilon, "delta": cfg.target_delta if cfg.dp else None,
            "targetEpsilon": cfg.target_epsilon if cfg.dp else None, "steps": outcome.steps,
            "totalSteps": outcome.planned_steps,
            "dataDigest": data_digest, "filter": {k: counts[k] for k in
                                                  ("kept", "revised", "dropped", "duplicatesRemoved")},
            "message": message}


def _default_constitution() -> str:
    from .constitution import default_text

    return default_text()
