"""Real transformers base models of two architectures (Llama, GPT-2), made locally with
save_pretrained: by path, pvc:// and hf:// (a hub-layout model cache), LoRA on peft's
per-architecture default modules, with and without DP, digest checked at load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import child_env, read_result, run_cli

pytest.importorskip("peft")


def _make_model(kind: str, directory: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from acgs_trainer.bases import public_words
    from acgs_trainer.constitution import load_constitution
    from acgs_trainer.modeling import build_tokenizer

    tok = build_tokenizer(public_words(load_constitution()))
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id)
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=2, n_positions=256, **ids))
    else:
        model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=2, num_attention_heads=2,
                                             num_key_value_heads=2, max_position_embeddings=256,
                                             **ids))
    model.save_pretrained(directory)
    tok.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from acgs_trainer.constitution import load_constitution
    from acgs_trainer.datasets import generate

    path = tmp_path_factory.mktemp("data") / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in generate("constitutional_ai", 60,
                                                                       load_constitution())))
    return path


@pytest.mark.parametrize("kind,modules", [("llama", ["q_proj", "v_proj"]), ("gpt2", ["c_attn"])])
@pytest.mark.parametrize("dp", [True, False])
def test_a_local_model_trains_through_pvc_and_serves_its_own_outputs(kind, modules, dp, data,
                                                                     tmp_path) -> None:
    from acgs_trainer.artifact import BASE_MODEL_DIGEST_MISMATCH, ArtifactError, verify_artifact
    from acgs_trainer.modeling import generate_continuations, load_for_inference

    model_dir = _make_model(kind, tmp_path / "models" / "claim" / "bases" / kind)
    out = tmp_path / "out"
    proc = run_cli("acgs-train", "--data", str(data), "--output", str(out), "--base-model",
                   f"pvc://claim/bases/{kind}", "--max-steps", "6", "--batch-size", "8",
                   "--eval-max-examples", "8", *([] if dp else ["--no-dp"]),
                   env=child_env(ACGS_MODEL_ROOT=str(tmp_path / "models")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_result(out)
    assert result["steps"] == 6 and (result["epsilon"] is not None) == dp
    manifest = json.loads((out / "artifact" / "manifest.json").read_text())
    assert manifest["adapter"]["targetModules"] == modules  # peft's default for the architecture
    base = manifest["baseModel"]
    assert base["bundled"] is False and Path(base["path"]) == model_dir.resolve()
    assert base["architecture"] == {"llama": "LlamaForCausalLM", "gpt2": "GPT2LMHeadModel"}[kind]
    verify_artifact(out / "artifact", result["digest"], "cdd01ef066bc6cf2")
    model, tok = load_for_inference(out / "artifact")
    assert len(generate_continuations(model, tok, ["task: constitutional_ai decision:"])) == 1
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-2] + b"\0\0")  # the base changed under the artifact
    with pytest.raises(ArtifactError) as err:
        load_for_inference(out / "artifact")
    assert err.value.code == BASE_MODEL_DIGEST_MISMATCH and base["digest"] in str(err.value)


def test_hf_names_resolve_from_a_model_cache_or_fail_clearly(data, tmp_path) -> None:
    cache = tmp_path / "hf-cache"
    missing = run_cli("acgs-train", "--data", str(data), "--output", str(tmp_path / "o1"),
                      "--base-model", "hf://acme/tiny-gpt2", "--max-steps", "2",
                      env=child_env(ACGS_HF_CACHE=str(cache)))
    assert missing.returncode == 2
    assert "hf://acme/tiny-gpt2" in missing.stderr and "no model hub is reachable" in missing.stderr
    snapshot = cache / "models--acme--tiny-gpt2" / "snapshots" / "abc123"
    _make_model("gpt2", snapshot)
    (cache / "models--acme--tiny-gpt2" / "refs").mkdir()
    (cache / "models--acme--tiny-gpt2" / "refs" / "main").write_text("abc123")
    proc = run_cli("acgs-train", "--data", str(data), "--output", str(tmp_path / "o2"),
                   "--base-model", "hf://acme/tiny-gpt2", "--max-steps", "2", "--no-dp",
                   "--eval-max-examples", "4", env=child_env(ACGS_HF_CACHE=str(cache)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((tmp_path / "o2" / "artifact" / "manifest.json").read_text())
    assert manifest["baseModel"]["name"] == "hf://acme/tiny-gpt2"
    assert Path(manifest["baseModel"]["path"]) == snapshot.resolve()
    shutil.rmtree(tmp_path / "o2")
