"""End-to-end ``acgs-train`` runs on a tiny model: DP training, privacy accounting, budget halt,
kill + resume, config/data errors, progress reporting. Real steps, real files, real processes."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from acgs_trainer.artifact import verify_artifact
from acgs_trainer.constitution import CONSTITUTIONAL_HASH, load_constitution
from acgs_trainer.dataio import dedupe, read_records, split, write_records
from acgs_trainer.datasets import generate
from acgs_trainer.filtering import constitutional_filter

from .conftest import child_env, entry_point, read_result, run_cli, train_args

pytestmark = pytest.mark.ml


def _manifest(output: Path) -> dict[str, Any]:
    return json.loads((output / "artifact" / "manifest.json").read_text())


def _independent_epsilon(history: list[list[float]], delta: float) -> float:
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    total = sum(compute_rdp(q=q, noise_multiplier=s, steps=int(n), orders=orders)
                for s, q, n in history)
    eps, _ = get_privacy_spent(orders=orders, rdp=total, delta=delta)
    return float(eps)


def test_dp_run_writes_a_verified_artifact_scored_from_its_own_outputs(baseline_run) -> None:
    proc, output = baseline_run["proc"], baseline_run["output"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_result(output)
    assert result["phase"] == "Succeeded" and result["exitCode"] == 0
    term = baseline_run["termination"].read_text()
    assert json.loads(term) == result and len(term.encode()) < 4096
    # The operator reads the result through the contract's model: progress ends at step/totalSteps.
    from acgs_contract.result import parse_trainer_result

    parsed = parse_trainer_result(json.loads(term))
    assert parsed is not None and (parsed.steps, parsed.total_steps) == (200, 200)
    manifest = verify_artifact(output / "artifact", result["digest"], CONSTITUTIONAL_HASH)
    assert manifest.base_model.name == "builtin:tiny-llama" and manifest.base_model.bundled
    assert manifest.training["steps"] == 200 and manifest.trainer_version
    assert manifest.data["splitSizes"] == {"train": 96, "val": 12, "eval": 12}
    assert manifest.data["splitSeed"] == 3, "no --split-seed: the split follows --seed, as before"
    assert manifest.data["filter"]["kept"] == 120 and manifest.data["digest"] == result["dataDigest"]
    m = manifest.metrics
    assert 0.0 <= m["complianceScore"] <= 1.0 and m["evalExamples"] == 12
    assert sum(m["confusion"].values()) == 12

    # The score is reproducible from the artifact alone: reload it, regenerate, re-score.
    from acgs_trainer.evaluate import evaluate_generations
    from acgs_trainer.modeling import load_for_inference

    constitution = load_constitution()
    records, _ = dedupe(read_records(_dataset_of(proc)))
    kept = constitutional_filter(records, constitution, CONSTITUTIONAL_HASH).kept
    held_out = split(kept, seed=3, val_ratio=0.1, eval_ratio=0.1).eval
    model, tokenizer = load_for_inference(output / "artifact", merge=False)
    again = evaluate_generations(model, tokenizer, held_out, constitution)
    assert again["complianceScore"] == m["complianceScore"]
    assert again["confusion"] == m["confusion"]


def _dataset_of(proc: subprocess.CompletedProcess[str]) -> Path:
    args = list(proc.args)
    return Path(args[args.index("--data") + 1])


def test_epsilon_recomputed_from_the_accountant_history_matches(baseline_run) -> None:
    manifest = _manifest(baseline_run["output"])
    privacy = manifest["privacy"]
    history = privacy["accountantHistory"]
    assert sum(n for _, _, n in history) == privacy["steps"] == 200
    # every step released the noised gradient and the noised loss: one σ_eff (docs/privacy.md)
    assert {s for s, _, _ in history} == {privacy["accountedNoiseMultiplier"]}
    eps = _independent_epsilon(history, privacy["targetDelta"])
    assert abs(eps - privacy["epsilonSpent"]) < 1e-6
    assert eps <= 0.95 * privacy["targetEpsilon"] <= 8 and privacy["targetDelta"] <= 1e-5
    assert read_result(baseline_run["output"])["epsilon"] == pytest.approx(eps, abs=1e-9)


def test_progress_reaches_the_operator_with_the_bearer_token(baseline_run) -> None:
    posts = baseline_run["posts"]
    assert posts, "no progress POST received"
    assert all(auth == "Bearer s3cret" for _, auth in posts)
    running = [b for b, _ in posts if b["phase"] == "Running"]
    assert running and all(b["totalSteps"] == 200 and 0 < b["percent"] <= 100 for b in running)
    assert all(b["epsilon"] is not None and b["loss"] is not None for b in running)
    steps = [b["step"] for b in running]
    assert steps == sorted(steps)
    final = posts[-1][0]
    assert final["phase"] == "Succeeded" and final["percent"] == 100.0 and final["step"] == 200


def test_killed_run_resumes_from_its_checkpoint_to_the_same_artifact(dataset, baseline_run,
                                                                     tmp_path) -> None:
    output = tmp_path / "out"
    # The baseline's secret key (noise, batches) in this run's private directory: the killed run
    # and its resumption then draw what the baseline drew, and must reproduce it bit for bit.
    (output / "checkpoints").mkdir(parents=True)
    shutil.copy2(baseline_run["output"] / "checkpoints" / "secret-key",
                 output / "checkpoints" / "secret-key")
    cmd = [*entry_point("acgs-train"), *train_args(dataset, output)]
    child = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((output / "checkpoints").glob("step-*")) and time.monotonic() < deadline:
        if child.poll() is not None:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (output / "result.json").exists(), "run finished before it could be killed"
    killed_at = max(int(p.name.split("-")[1]) for p in (output / "checkpoints").glob("step-*"))
    assert 0 < killed_at < 200

    proc = run_cli("acgs-train", *train_args(dataset, output))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from checkpoint at step" in proc.stderr
    manifest = _manifest(output)
    assert manifest["training"]["resumedFrom"] >= killed_at
    assert manifest["privacy"]["steps"] == 200  # the accountant's history survived the kill
    # Same key, same batches, same noise (RNG restored): every file bit-identical to the
    # uninterrupted run's (the digest also seals when and how the run went - resumedFrom,
    # createdAt - so it differs).
    assert manifest["files"] == _manifest(baseline_run["output"])["files"]


def test_tiny_budget_halts_with_exit_4_and_never_reports_more_than_the_target(dataset,
                                                                              tmp_path) -> None:
    output = tmp_path / "out"
    proc = run_cli("acgs-train", "--data", str(dataset), "--output", str(output),
                   "--max-steps", "50", "--batch-size", "16", "--target-epsilon", "2",
                   "--noise-multiplier", "1.5", "--checkpoint-every", "0")
    assert proc.returncode == 4, proc.stderr[-2000:]
    result = read_result(output)
    assert result["reason"] == "PrivacyBudgetExhausted" and result["phase"] == "Failed"
    assert 0 < result["steps"] < 50 and result["epsilon"] <= 0.95 * 2
    assert not (output / "artifact").exists()
    # the halt checkpoint holds the history behind the reported ε
    import torch

    ckpt = sorted((output / "checkpoints").glob("step-*"))[-1] / "state.pt"
    history = torch.load(ckpt, weights_only=True)["privacy"]["history"]
    assert _independent_epsilon(history, 1e-5) == pytest.approx(result["epsilon"], abs=1e-6)


def test_no_dp_run_reports_no_privacy_spend(dataset, tmp_path) -> None:
    output = tmp_path / "out"
    proc = run_cli("acgs-train", "--data", str(dataset), "--output", str(output), "--no-dp",
                   "--max-steps", "20", "--grad-accum", "2", "--batch-size", "8",
                   "--lr-schedule", "cosine", "--eval-max-examples", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = _manifest(output)
    assert manifest["privacy"] == {"enabled": False} and read_result(output)["epsilon"] is None
    assert manifest["metrics"]["evalExamples"] == 8


@pytest.mark.parametrize("args, config, message", [
    (["--target-epsilon", "50"], None, "--target-epsilon=50: must be ≤ 8.0"),
    (["--target-delta", "0.01"], None, "--target-delta=0.01: must be ≤ 1e-05"),
    (["--base-model", "builtin:gpt-9"], None, "--base-model='builtin:gpt-9': expected one of"),
    ([], {"loraR": 0}, "--lora-r=0: must be > 0"),
    ([], {"learningRate": 1}, "--learningRate=1: unknown setting"),
])
def test_bad_config_exits_2_naming_the_field(dataset, tmp_path, args, config, message) -> None:
    output = tmp_path / "out"
    extra = list(args)
    if config is not None:
        (tmp_path / "c.json").write_text(json.dumps(config))
        extra += ["--config", str(tmp_path / "c.json")]
    proc = run_cli("acgs-train", "--data", str(dataset), "--output", str(output), *extra)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    result = read_result(output)
    assert result["reason"] == "InvalidConfig" and message in result["message"]


def test_unusable_data_exits_3_with_the_filter_counts(tmp_path) -> None:
    records = generate("constitutional_ai", 5, load_constitution())
    for r in records:
        r["constitutional_hash"] = "ffffffffffffffff"
    data = write_records(records, tmp_path / "foreign.csv")
    proc = run_cli("acgs-train", "--data", str(data), "--output", str(tmp_path / "out"))
    assert proc.returncode == 3
    result = read_result(tmp_path / "out")
    assert result["reason"] == "InvalidData"
    assert "0 usable records" in result["message"] and "'wrong_hash': 5" in result["message"]
    missing = run_cli("acgs-train", "--data", str(tmp_path / "nope.jsonl"), "--output",
                      str(tmp_path / "out2"))
    assert missing.returncode == 3 and "nope.jsonl: no such file" in missing.stderr


def test_an_empty_poisson_batch_is_a_noise_only_step(tmp_path) -> None:
    import torch

    from acgs_trainer.checkpoint import Checkpointer
    from acgs_trainer.config import validate_config
    from acgs_trainer.modeling import ALL_LINEAR, apply_lora, build_base_model, build_tokenizer
    from acgs_trainer.prompting import format_prompt, target_of
    from acgs_trainer.training import Trainer, encode

    records = generate("constitutional_ai", 20, load_constitution())
    prompts, targets = [format_prompt(r) for r in records], [target_of(r) for r in records]
    tok = build_tokenizer([p + " " + t for p, t in zip(prompts, targets)])
    model = apply_lora(build_base_model("builtin:tiny-llama", len(tok), 0, tok), 4, 8, 0.0,
                       ALL_LINEAR)
    cfg = validate_config({"data": "x", "output": str(tmp_path), "max_steps": 1})
    trainer = Trainer(cfg, model, encode(prompts, targets, tok, 64), torch.device("cpu"),
                      Checkpointer(tmp_path), "d", lambda *a: None)
    trainer._enable_dp(1.0)
    before = {n: p.detach().clone() for n, p in trainer.named.items()}
    loss = trainer._step_dp(0, torch.zeros(0, dtype=torch.long))
    assert math.isfinite(loss) and loss != 0.0  # the noised loss of an empty batch: noise alone
    moved = [n for n, p in trainer.named.items() if not torch.equal(p, before[n])]
    assert len(moved) == len(before)  # noise reached every LoRA matrix
