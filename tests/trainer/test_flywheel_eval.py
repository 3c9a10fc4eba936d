"""The flywheel's eval step with real small models: the shipped pre-trained tiny base as is and with
in-context examples, and a LoRA fine-tune trained by acgs-train on the run's own train.jsonl (as the
flywheel's TrainingJob does), each scored on the run's eval set; an artifact that fails verification
is refused before anything loads it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from acgs_contract import flywheel as fw

from acgs_trainer.dataio import read_records
from acgs_trainer.flywheel_eval import in_context_prefix, main
from acgs_trainer.prompting import DECISION_MARKER, format_prompt, target_of

from .conftest import child_env, read_result, run_cli
from .flywheel_logs import interactions, write_log

pytestmark = pytest.mark.ml

TINY = "builtin:tiny-llama"
EVAL_SIZE = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A prepared run (16 logged interactions, 4 to evaluate on) and a fine-tune of its train file."""
    root = tmp_path_factory.mktemp("flywheel")
    write_log(root / "log", interactions(16, seed=4))
    proc = run_cli("acgs-data", "flywheel-prepare", "--log-dir", str(root / "log"), "--workspace",
                   str(root / "ws"), "--run-id", "r1", "--eval-size", str(EVAL_SIZE), "--record-epsilon-limit", "8",
                   "--finetune-epsilon", "8", "--finetunes", "1", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train = root / "ws" / fw.run_dir("r1") / fw.TRAIN_FILE
    out = root / "tj"
    proc = run_cli("acgs-train", "--data", str(train), "--output", str(out), "--base-model", TINY,
                   "--max-steps", "4", "--batch-size", "4", "--no-dp", "--eval-max-examples", "2", "--seed", "0",
                   env=child_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    prepared = json.loads((root / "ws" / fw.run_dir("r1") / fw.PREPARE_FILE).read_text())
    return {"workspace": root / "ws", "prepared": prepared,
            "artifact": out / "artifact", "digest": read_result(out)["digest"]}


def evaluate(run: dict[str, Any], candidate: str, kind: str, *extra: str) -> tuple[int, dict[str, Any]]:
    term = run["workspace"].parent / f"{candidate}-termination-log"
    code = main(["--workspace", str(run["workspace"]), "--run-id", "r1", "--candidate", candidate, "--kind", kind,
                 "--max-new-tokens", "6", "--device", "cpu", "--termination-log", str(term), *extra])
    return code, json.loads(term.read_text())


def test_every_candidate_is_scored_on_the_same_eval_set(run: dict[str, Any]) -> None:
    artifact = ("--artifact", str(run["artifact"]), "--expected-digest", run["digest"])
    results = {
        "base": evaluate(run, "base", fw.KIND_BASE, "--base-model", TINY),
        "icl": evaluate(run, "icl", fw.KIND_IN_CONTEXT, "--base-model", TINY, "--in-context-examples", "2"),
        "lora": evaluate(run, "lora", fw.KIND_FINE_TUNE, *artifact),
        "prod": evaluate(run, "prod", fw.KIND_PRODUCTION, *artifact),
    }
    for name, (code, result) in results.items():
        assert code == 0 and result["phase"] == fw.PHASE_SUCCEEDED, result
        assert result["evalDigest"] == run["prepared"]["evalDigest"] and result["evalRecords"] == EVAL_SIZE
        assert 0 <= result["accuracy"] <= result["complianceScore"] <= 1  # exact answers are compliant ones
        assert result["latencyMs"] > 0 and result["candidate"] == name
        written = run["workspace"] / fw.run_dir("r1") / fw.EVALS_DIR / f"{name}.json"
        assert json.loads(written.read_text()) == result
    assert results["lora"][1]["model"] == results["prod"][1]["model"] == run["digest"]
    assert results["base"][1]["model"] == TINY and "2 in-context examples" in results["icl"][1]["message"]


def test_in_context_prompts_hold_k_labelled_train_records(run: dict[str, Any]) -> None:
    train = read_records(run["workspace"] / fw.run_dir("r1") / fw.TRAIN_FILE)
    prefix = in_context_prefix(train, 3, seed=0)
    assert prefix.count(DECISION_MARKER) == 3
    shown = [r for r in train if f"{format_prompt(r)} {target_of(r)} " in prefix]
    assert len(shown) == 3  # each example is a train record followed by the judge's label
    assert in_context_prefix(list(reversed(train)), 3, seed=0) == prefix  # a seeded pick, not file order
    code, result = evaluate(run, "icl-big", fw.KIND_IN_CONTEXT, "--base-model", TINY,
                            "--in-context-examples", str(len(train) + 1))
    assert (code, result["reason"]) == (2, fw.REASON_INVALID_INPUT)
    assert f"--in-context-examples={len(train) + 1}" in result["message"]


def test_an_artifact_that_fails_verification_is_refused(run: dict[str, Any], tmp_path: Path) -> None:
    code, result = evaluate(run, "lora", fw.KIND_FINE_TUNE, "--artifact", str(run["artifact"]),
                            "--expected-digest", "sha256:" + "1" * 64)
    assert (code, result["phase"], result["reason"]) == (5, fw.PHASE_FAILED, fw.REASON_ARTIFACT_INVALID)
    assert "DigestMismatch" in result["message"] and result["accuracy"] is None
    tampered = tmp_path / "artifact"
    shutil.copytree(run["artifact"], tampered)
    weights = next((tampered / "adapter").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    code, result = evaluate(run, "lora", fw.KIND_FINE_TUNE, "--artifact", str(tampered),
                            "--expected-digest", run["digest"])
    assert (code, result["reason"]) == (5, fw.REASON_ARTIFACT_INVALID) and "adapter" in result["message"]
    assert result["complianceScore"] is None


def test_an_eval_set_changed_after_prepare_or_a_missing_run_is_refused(run: dict[str, Any], tmp_path: Path) -> None:
    code, result = evaluate(run | {"workspace": tmp_path}, "base", fw.KIND_BASE, "--base-model", TINY)
    assert (code, result["reason"]) == (2, fw.REASON_INVALID_INPUT) and "not prepared" in result["message"]
    copy = tmp_path / "ws"
    shutil.copytree(run["workspace"], copy)
    eval_file = copy / fw.run_dir("r1") / fw.EVAL_FILE
    eval_file.write_text("\n".join(eval_file.read_text().splitlines()[1:]) + "\n")
    code, result = evaluate(run | {"workspace": copy}, "base", fw.KIND_BASE, "--base-model", TINY)
    assert (code, result["reason"]) == (2, fw.REASON_INVALID_INPUT) and "changed after prepare" in result["message"]
