"""Models and tokenizers: built-in Llama-shaped configs or a local transformers model, LoRA via peft,
and ``load_for_inference`` that rebuilds base + adapter from an artifact directory alone.

No hub is reachable: built-in bases are initialised from a config with a fixed seed, and their
weights travel inside the artifact (``base/``) so serving never depends on re-creating them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM,
                          PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast)

from .constitution import DECISIONS
from .prompting import DECISION_MARKER

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
# Llama-shaped so peft's default target modules and HF generate work unchanged.
BUILTIN_CONFIGS: dict[str, dict[str, Any]] = {
    # ~0.7 M parameters with a few hundred words of vocabulary: CPU tests, seconds per run.
    "tiny-llama": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256),
    # ~100 M parameters: GPU benchmarks (bf16).
    "llama-100m": dict(hidden_size=768, intermediate_size=2560, num_hidden_layers=12,
                       num_attention_heads=12, num_key_value_heads=12,
                       max_position_embeddings=512),
}
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "bos_token": "[BOS]",
                  "eos_token": "[EOS]"}


def is_builtin(name: str) -> bool:
    return name.startswith(BUILTIN_PREFIX)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Words and punctuation apart, digits one by one: any number maps onto ten known tokens.
    return pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                    pre_tokenizers.Digits(individual_digits=True)])


def build_tokenizer(texts: Iterable[str], extra_words: Iterable[str] = ()
                    ) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the training texts (unknown words map to [UNK])."""
    pre = _pre_tokenizer()
    words: set[str] = set(extra_words) | set(DECISIONS) | {"none", DECISION_MARKER.rstrip(":"), ":",
                                                             "."} | set("0123456789")
    for text in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(text))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for w in sorted(words - set(vocab)):
        vocab[w] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre
    tok = PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
    tok.padding_side = "right"
    return tok


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # common for causal LMs shipped without a pad token
    return tok


def build_base_model(name_or_path: str, vocab_size: int, seed: int, tokenizer:
                     PreTrainedTokenizerBase | None = None) -> PreTrainedModel:
    """A built-in model from its config (seeded init) or a transformers model from a local path."""
    if is_builtin(name_or_path):
        key = name_or_path[len(BUILTIN_PREFIX):]
        if key not in BUILTIN_CONFIGS:
            raise ValueError(f"--base-model={name_or_path!r}: expected one of "
                             f"{[BUILTIN_PREFIX + k for k in BUILTIN_CONFIGS]} or a local path")
        assert tokenizer is not None
        config = LlamaConfig(vocab_size=vocab_size, pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
                             **BUILTIN_CONFIGS[key])
        # Seeded on a private generator state so base weights depend on the seed alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
        return model
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        raise ValueError(f"--base-model={name_or_path!r}: not a built-in name and no config.json "
                         f"there: expected a local transformers model directory")
    return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)


def apply_lora(model: PreTrainedModel, r: int, alpha: int, dropout: float,
               target_modules: Sequence[str] | None) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(target_modules) if target_modules else None,
                        bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    for name, p in peft_model.named_parameters():
        # Only LoRA matrices train; DP-SGD then clips and noises exactly these.
        p.requires_grad = "lora_" in name
    return peft_model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _sorted_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_json(v) for k, v in sorted(value.items())}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sorted(value)
    if isinstance(value, list):
        return [_sorted_json(v) for v in value]
    return value


def save_adapter(peft_model: Any, directory: str | os.PathLike[str]) -> None:
    """Adapter weights + a deterministic adapter_config.json.

    peft stores target_modules as a set, so its JSON list order varies between processes; the
    artifact digest must depend on what was trained, not on hash seeds.
    """
    directory = Path(directory)
    peft_model.save_pretrained(str(directory))
    cfg_path = directory / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("base_model_name_or_path", None)  # a machine-local path; the manifest records the base
    cfg_path.write_text(json.dumps(_sorted_json(cfg), indent=1, sort_keys=True) + "\n")
    readme = directory / "README.md"
    if readme.exists():
        readme.unlink()  # peft's model card embeds versions and timestamps; the manifest has these


def load_for_inference(artifact_dir: str | os.PathLike[str], device: str = "cpu",
                       merge: bool = True) -> tuple[Any, PreTrainedTokenizerBase]:
    """(model, tokenizer) ready for ``generate``, from the artifact directory alone.

    The caller verifies the artifact first (``artifact.verify_artifact``); this only loads.
    """
    from peft import PeftModel

    from .artifact import base_model_dir, read_manifest

    root = Path(artifact_dir)
    manifest = read_manifest(root)
    base_path = base_model_dir(root, manifest)  # a base outside the artifact: its digest first
    tokenizer = load_tokenizer(root / manifest.tokenizer_path)
    base = AutoModelForCausalLM.from_pretrained(str(base_path), local_files_only=True)
    model = PeftModel.from_pretrained(base, str(root / manifest.adapter.path), is_trainable=False)
    if merge:
        model = model.merge_and_unload()
    model.to(device)
    model.eval()
    return model, tokenizer


def generate_continuations(model: Any, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                           max_new_tokens: int = 8, batch_size: int = 32) -> list[str]:
    """Greedy continuations of ``prompts`` (decoded, prompt removed), as the server generates."""
    from .generation import encode_prompts, generate_from_ids

    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            ids = encode_prompts(tokenizer, prompts[i:i + batch_size])
            out.extend(generate_from_ids(model, tokenizer, ids, max_new_tokens))
    finally:
        if was_training:
            model.train()
    return out
