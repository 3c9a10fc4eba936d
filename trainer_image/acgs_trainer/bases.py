"""Built-in bases, pre-trained on public data only, built once and cached.

DP-SGD on LoRA adapters over a randomly initialised model does not learn (the noise swamps a
signal that has to build the whole model); DP fine-tuning works on top of a model that already
knows the task's language. So a built-in base is:

- a vocabulary from public material only (the dataset schemas, the constitution, the prompt
  template): a word seen only in private records maps to [UNK], so neither the tokenizer nor any
  decoded output can carry it;
- weights pre-trained (all parameters, no DP: nothing private is involved) on a corpus the rules
  generate from the PUBLIC half of the scenario space (``datasets.scenario_partition``); the
  sample/benchmark data come from the other half, so evaluation never scores a scenario the base
  has seen.

The recipe (config, corpus digest, vocabulary digest, hyper-parameters, constitution sha256) has a
digest; a build lives in ``<cache>/<name>-<recipe digest>/`` with ``build.json`` recording the
digest of the files written, checked on every load. Cache: ``$ACGS_MODEL_CACHE`` (os.pathsep
separated), else ``~/.cache/acgs/models``; a run that can write to neither builds into its own
work directory. The tiny base's build is shipped in the package (``pretrained/``), so no run has
to pre-train it; ``acgs-train build-base --cache DIR`` rebuilds it from the recipe.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from .artifact import compute_digest
from .constitution import DECISIONS, Constitution
from .datasets import DATASET_TYPES, PUBLIC, SCHEMAS, generate
from .dataio import records_digest
from .modeling import BUILTIN_CONFIGS, BUILTIN_PREFIX, build_base_model, build_tokenizer
from .prompting import DECISION_MARKER, field_text, format_prompt, free_text_of, target_of

log = logging.getLogger(__name__)

CACHE_ENV = "ACGS_MODEL_CACHE"
BUILD_FILE = "build.json"
RECIPE_VERSION = 2


@dataclass(frozen=True)
class PretrainRecipe:
    records_per_type: int  # public corpus size per dataset type
    steps: int
    batch_size: int
    lr: float
    seed: int = 20261130
    eval_per_type: int = 50  # public held-out scenarios for the build's own score


# Sized so the tiny base builds in about a minute on one CPU core.
RECIPES: dict[str, PretrainRecipe] = {
    "tiny-llama": PretrainRecipe(records_per_type=2000, steps=1500, batch_size=32, lr=3e-3),
    "llama-100m": PretrainRecipe(records_per_type=4000, steps=2000, batch_size=32, lr=3e-4),
}


def public_words(constitution: Constitution) -> list[str]:
    """Every public string a prompt or answer is made of: template words, dataset types, each
    schema field with each of its values, decisions, the constitution's principles and rules."""
    texts = ["task:", "text:", DECISION_MARKER, "none", " ".join("0123456789"), ".", *DECISIONS,
             *DATASET_TYPES]
    for fields in SCHEMAS.values():
        for name, spec in fields.items():
            choices: dict[str, list[Any]] = {"choice": list(spec.choices), "bool": [True, False]}
            # a number: "name=" then digits, split by the tokenizer
            values: list[Any] = choices.get(spec.kind, [spec.lo])
            texts += [field_text(name, v) for v in values]
    for name, text in constitution.principles.items():
        texts += [name, text]
    texts += [f"{rule.id} {rule.principle} {rule.decision}" for rule in constitution.rules]
    # The free text of the seed-shaped request bodies (request_shapes) comes from public
    # templates; a sample of the public corpus holds every word of them.
    texts += sorted({free_text_of(r) for r in public_corpus(constitution, 300, 0)} - {""})
    return texts


def public_corpus(constitution: Constitution, per_type: int, seed: int) -> list[dict[str, Any]]:
    """``per_type`` public records of each type, balanced over the rule combinations that fire:
    from a pool three times as large, each combination is taken at most ``per_type // 10``
    times. Sampled at their natural rate, rules that fire in few scenarios (e.g. transparency's,
    ~3 % of two types) were never learned by the tiny base (measured: 0 of 9 held-out cases)."""
    corpus: list[dict[str, Any]] = []
    for dataset_type in DATASET_TYPES:
        pool = generate(dataset_type, per_type * 3, constitution, seed, PUBLIC)
        taken: dict[tuple[str, ...], int] = {}
        chosen: list[int] = []
        for index, record in enumerate(pool):
            key = tuple(record["target_output"]["rules"])
            if taken.get(key, 0) < max(1, per_type // 10):
                taken[key] = taken.get(key, 0) + 1
                chosen.append(index)
        # the rest at the natural rate, so the corpus keeps ``per_type`` records of each type
        picked = set(chosen)
        chosen += [i for i in range(len(pool)) if i not in picked][: max(0, per_type - len(chosen))]
        corpus += [pool[i] for i in sorted(chosen[:per_type])]
    return corpus


def recipe_of(name: str, constitution: Constitution) -> tuple[PretrainRecipe, dict[str, Any]]:
    recipe = RECIPES[name]
    corpus = public_corpus(constitution, recipe.records_per_type, recipe.seed)
    words = public_words(constitution)
    described = {"version": RECIPE_VERSION, "name": BUILTIN_PREFIX + name,
                 "config": BUILTIN_CONFIGS[name], "recipe": recipe.__dict__,
                 "corpusDigest": records_digest(corpus),
                 "vocabularyDigest": "sha256:" + hashlib.sha256(
                     json.dumps(words).encode()).hexdigest(),
                 "constitutionSha256": constitution.source_sha256,
                 "torch": torch.__version__.split("+")[0]}
    return recipe, described


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


# Builds shipped with the package (small enough: the tiny base is ~1.6 MB); looked up first, never
# written at run time.
SHIPPED = Path(__file__).resolve().parent / "pretrained"


def cache_roots() -> list[Path]:
    """Where builds are written (and looked up after SHIPPED), first writable first."""
    configured = [Path(p) for p in os.environ.get(CACHE_ENV, "").split(os.pathsep) if p]
    return configured + [Path.home() / ".cache" / "acgs" / "models"]


@dataclass(frozen=True)
class BuiltBase:
    root: Path  # holds base/, tokenizer/, build.json
    build: dict[str, Any]

    @property
    def base_dir(self) -> Path:
        return self.root / "base"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"


class BaseBuildError(ValueError):
    pass


def _load_build(root: Path) -> BuiltBase | None:
    build_file = root / BUILD_FILE
    if not build_file.is_file():
        return None
    build = json.loads(build_file.read_text())
    for part in ("base", "tokenizer"):
        actual, expected = compute_digest(root / part), build[f"{part}Digest"]
        if actual != expected:
            raise BaseBuildError(f"{root / part}: digest {actual}, expected {expected} (from "
                                 f"{build_file}); the cached base was altered: delete {root} "
                                 "to rebuild it")
    return BuiltBase(root, build)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:  # one builder per cache entry; the others wait and reuse
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_base(model_name: str, constitution: Constitution, fallback: Path) -> BuiltBase:
    """The pre-trained built-in base ``builtin:<name>``: found in a cache (digest checked) or
    built into the first writable cache (else ``fallback``)."""
    name = model_name[len(BUILTIN_PREFIX):]
    if name not in RECIPES:
        raise BaseBuildError(f"--base-model={model_name!r}: expected one of "
                             f"{[BUILTIN_PREFIX + k for k in RECIPES]} or a local path")
    recipe, described = recipe_of(name, constitution)
    entry = f"{name}-{_digest(described)[:16]}"
    roots = cache_roots()
    for root in [SHIPPED, *roots]:
        found = _load_build(root / entry)
        if found is not None:
            return found
    for root in [*roots, fallback]:
        try:
            root.mkdir(parents=True, exist_ok=True)
            with _locked(root / f".{entry}.lock"):
                found = _load_build(root / entry)  # built by another process meanwhile
                return found or _build(name, recipe, described, constitution, root / entry)
        except OSError as exc:
            log.info("model cache %s not usable (%s); trying the next", root, exc)
    raise BaseBuildError(f"--base-model={model_name}: no writable place to build it "
                         f"(tried {[str(r) for r in roots + [fallback]]})")


def _build(name: str, recipe: PretrainRecipe, described: dict[str, Any],
           constitution: Constitution, dest: Path) -> BuiltBase:
    from .evaluate import evaluate_generations  # evaluate imports training; keep import light
    from .training import encode, sequence_losses

    started = time.perf_counter()
    log.info("building %s%s: pre-training on %d public records per type, %d steps (once; cached "
             "in %s)", BUILTIN_PREFIX, name, recipe.records_per_type, recipe.steps, dest.parent)
    corpus = public_corpus(constitution, recipe.records_per_type, recipe.seed)
    tokenizer = build_tokenizer(public_words(constitution))
    model = build_base_model(BUILTIN_PREFIX + name, len(tokenizer), recipe.seed, tokenizer)
    data = encode([format_prompt(r) for r in corpus], [target_of(r) for r in corpus], tokenizer,
                  128)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    warmup = max(1, recipe.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(
        (s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, s / recipe.steps)))))
    gen = torch.Generator().manual_seed(recipe.seed)
    order = torch.randperm(len(data), generator=gen)
    model.train()
    pos = 0
    for step in range(recipe.steps):
        if pos + recipe.batch_size > len(order):
            order, pos = torch.randperm(len(data), generator=gen), 0
        idx = order[pos:pos + recipe.batch_size]
        pos += recipe.batch_size
        width = int(data.attention_mask[idx].sum(1).max())
        batch = {"input_ids": data.input_ids[idx, :width],
                 "attention_mask": data.attention_mask[idx, :width],
                 "labels": data.labels[idx, :width]}
        loss = sequence_losses(model, batch).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % 200 == 0:
            log.info("pre-training %s step %d/%d loss %.4f", name, step + 1, recipe.steps,
                     float(loss))
    held_out = public_corpus(constitution, recipe.eval_per_type, recipe.seed + 1)
    scores = evaluate_generations(model, tokenizer, held_out, constitution)
    scores.pop("confusion", None)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "base")
    tokenizer.save_pretrained(str(tmp / "tokenizer"))
    build = {**described, "baseDigest": compute_digest(tmp / "base"),
             "tokenizerDigest": compute_digest(tmp / "tokenizer"),
             "publicEvalMetrics": scores, "buildSeconds": round(time.perf_counter() - started, 1)}
    (tmp / BUILD_FILE).write_text(json.dumps(build, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    log.info("built %s in %.0f s: public held-out compliance %.3f accuracy %.3f; %s",
             name, build["buildSeconds"], scores["complianceScore"], scores["accuracy"], dest)
    return BuiltBase(dest, build)


def main(argv: list[str]) -> int:
    """``acgs-train build-base [--base-model builtin:NAME] [--cache DIR]``: build (or find and
    check) a built-in base and print its build record; the image runs it at build time."""
    import argparse

    from .constitution import load_constitution

    parser = argparse.ArgumentParser(prog="acgs-train build-base")
    parser.add_argument("--base-model", default=BUILTIN_PREFIX + "tiny-llama")
    parser.add_argument("--cache", help=f"cache directory (default: ${CACHE_ENV} or "
                        "~/.cache/acgs/models)")
    args = parser.parse_args(argv)
    if args.cache:
        os.environ[CACHE_ENV] = args.cache
    try:
        built = ensure_base(args.base_model, load_constitution(), Path(args.cache or "."))
    except BaseBuildError as exc:
        log.error("%s", exc)
        return 2
    print(json.dumps({"path": str(built.root), **built.build}, sort_keys=True))
    return 0
