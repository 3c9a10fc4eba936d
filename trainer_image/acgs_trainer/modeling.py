"""Models and tokenizers: built-in Llama-shaped configs (pre-trained on public data by bases.py)
or a transformers model of any causal-LM architecture (a path, ``pvc://``, ``hf://`` from a model
cache), LoRA via peft, and ``load_for_inference`` that rebuilds base + adapter from an artifact.

No hub is reachable. Built-in bases' weights travel inside the artifact (``base/``); an external
base is referenced by path and digest, and the digest is checked before it is loaded.
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


PVC_PREFIX, HF_PREFIX = "pvc://", "hf://"
MODEL_ROOT_ENV, HF_CACHE_ENV = "ACGS_MODEL_ROOT", "ACGS_HF_CACHE"
DEFAULT_MODEL_ROOT = "/models"  # the operator mounts a pvc:// claim read-only at /models/<claim>


def is_builtin(name: str) -> bool:
    return name.startswith(BUILTIN_PREFIX)


def _hub_snapshot(cache: Path, repo: str) -> Path | None:
    """``org/name`` in a Hugging Face hub cache (``models--org--name/snapshots/<rev>``, the
    revision ``refs/main`` names) or a plain ``org/name`` directory."""
    entry = cache / ("models--" + repo.replace("/", "--"))
    ref = entry / "refs" / "main"
    if ref.is_file() and (entry / "snapshots" / ref.read_text().strip() / "config.json").is_file():
        return entry / "snapshots" / ref.read_text().strip()
    snapshots = sorted((entry / "snapshots").glob("*/config.json"))
    if len(snapshots) == 1:
        return snapshots[0].parent
    return cache / repo if (cache / repo / "config.json").is_file() else None


def resolve_base_path(name: str) -> Path:
    """The local directory of a non-built-in ``--base-model``: ``pvc://claim/path`` (mounted at
    $ACGS_MODEL_ROOT/claim), ``hf://org/name`` (from the model-cache volume $ACGS_HF_CACHE; no hub
    is ever contacted) or a path in the image or on a volume."""
    if name.startswith(PVC_PREFIX):
        claim, _, sub = name[len(PVC_PREFIX):].partition("/")
        if not claim or ".." in Path(sub).parts:
            raise ValueError(f"--base-model={name!r}: expected pvc://<claim>/<path inside it>")
        return Path(os.environ.get(MODEL_ROOT_ENV, DEFAULT_MODEL_ROOT)) / claim / sub
    if name.startswith(HF_PREFIX):
        repo = name[len(HF_PREFIX):].strip("/")
        cache = os.environ.get(HF_CACHE_ENV)
        if repo.count("/") != 1:
            raise ValueError(f"--base-model={name!r}: expected hf://<org>/<name>")
        found = _hub_snapshot(Path(cache), repo) if cache else None
        if found is None:
            where = f"the model cache {cache}" if cache else f"no model cache (${HF_CACHE_ENV} unset)"
            raise ValueError(f"--base-model={name!r}: not found in {where}; no model hub is "
                             "reachable from the trainer: put the model in a model-cache volume "
                             f"(hub cache layout models--org--name/ or org/name/) and set "
                             f"${HF_CACHE_ENV}, or use pvc://<claim>/<path>")
        return found
    return Path(name)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Whitespace-separated words (a prompt's ``field=value`` stays one token), digits one by one:
    # any number maps onto ten known tokens.
    return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                    pre_tokenizers.Digits(individual_digits=True)])


def build_tokenizer(texts: Iterable[str], extra_words: Iterable[str] = ()
                    ) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``texts`` (unknown words map to [UNK]). Built-in bases pass
    public texts only (bases.public_words), never training records."""
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
    path = resolve_base_path(name_or_path)
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
