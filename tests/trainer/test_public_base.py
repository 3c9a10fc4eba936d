"""Built-in bases: public pre-training data disjoint from the generated (private) data, a
vocabulary from public material only, and a canary word from a private record in no output."""

from __future__ import annotations

import json
import shutil

import pytest

from acgs_trainer.constitution import load_constitution
from acgs_trainer.datasets import DATASET_TYPES, PRIVATE, PUBLIC, generate, scenario_partition

from .conftest import ProgressSink, child_env, read_result, run_cli

C = load_constitution()
CANARY = "zqxcanarywordqz"


def _key(record: dict) -> str:
    return json.dumps([record["type"], record["input"]["scenario"]], sort_keys=True)


@pytest.mark.parametrize("dataset_type", DATASET_TYPES)
def test_generated_data_never_contains_a_public_pretraining_scenario(dataset_type) -> None:
    from acgs_trainer.bases import RECIPES, public_corpus

    private = generate(dataset_type, 400, C, seed=0)
    assert {scenario_partition(dataset_type, r["input"]["scenario"]) for r in private} == {PRIVATE}
    recipe = RECIPES["tiny-llama"]
    public = [r for r in public_corpus(C, recipe.records_per_type, recipe.seed)
              if r["type"] == dataset_type]
    assert {scenario_partition(dataset_type, r["input"]["scenario"]) for r in public} == {PUBLIC}
    assert not {_key(r) for r in private} & {_key(r) for r in public}


def test_the_public_vocabulary_covers_every_schema_prompt_and_nothing_private() -> None:
    from acgs_trainer.bases import public_words
    from acgs_trainer.modeling import build_tokenizer
    from acgs_trainer.prompting import format_prompt, target_of

    tok = build_tokenizer(public_words(C))
    unk = tok.unk_token_id
    for dataset_type in DATASET_TYPES:
        for r in generate(dataset_type, 100, C, seed=4):
            ids = tok(format_prompt(r) + " " + target_of(r), add_special_tokens=False)["input_ids"]
            assert unk not in ids, (dataset_type, format_prompt(r))
    assert tok(CANARY, add_special_tokens=False)["input_ids"] == [unk]


def test_a_tampered_cached_base_is_refused_naming_both_digests(builtin_base, tmp_path,
                                                               monkeypatch) -> None:
    from acgs_trainer import bases
    from acgs_trainer.bases import BaseBuildError, CACHE_ENV, ensure_base

    found = ensure_base("builtin:tiny-llama", C, tmp_path / "unused")
    copy = tmp_path / "cache" / found.root.name
    shutil.copytree(found.root, copy)
    weights = copy / "base" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(bases, "SHIPPED", tmp_path / "cache")  # the tampered copy is found first
    with pytest.raises(BaseBuildError, match=r"digest sha256:[0-9a-f]{64}, expected "
                                             + found.build["baseDigest"]):
        ensure_base("builtin:tiny-llama", C, tmp_path / "unused")


def test_a_canary_word_in_one_private_record_reaches_no_published_output(builtin_base,
                                                                         tmp_path) -> None:
    records = generate("constitutional_ai", 80, C, seed=11)
    marked = records[0]
    # Everywhere a user's record can hold free text: id, request, text and an extra scenario
    # field (these reach the prompt), the target's reasoning.
    marked["id"] = f"{CANARY}-1"
    marked["input"]["request"] = f"please let {CANARY} read the ledger"
    marked["input"]["text"] = f"{CANARY} asks to read the ledger"  # free text reaches the prompt
    marked["input"]["scenario"][f"{CANARY}_field"] = CANARY
    marked["target_output"]["reasoning"] += f" {CANARY}"
    data = tmp_path / "private.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    output, term = tmp_path / "out", tmp_path / "termination-log"
    sink = ProgressSink()
    proc = run_cli("acgs-train", "--data", str(data), "--output", str(output), "--max-steps", "20",
                   "--batch-size", "8", "--log-every", "5", "--eval-ratio", "0.4",
                   "--eval-max-examples", "40", "--progress-url", sink.url, "--termination-log",
                   str(term), env=child_env(ACGS_PROGRESS_TOKEN="t", ACGS_LOG_LEVEL="DEBUG"))
    sink.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_result(output)
    assert result["steps"] == 20 and result["filter"]["dropped"] == 0  # the marked record was kept
    published = {"stdout/stderr": proc.stdout + proc.stderr, "termination log": term.read_text(),
                 "result.json": (output / "result.json").read_text(),
                 "progress": json.dumps([body for body, _ in sink.posts])}
    for path in sorted((output / "artifact").rglob("*")):
        if path.is_file():
            published[str(path.relative_to(output))] = path.read_bytes().decode("latin-1")
    assert len(published) > 8 and sink.posts
    leaks = [where for where, text in published.items() if CANARY in text.lower()]
    assert not leaks, f"the canary word appears in {leaks}"
