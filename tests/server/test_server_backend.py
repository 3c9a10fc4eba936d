"""The model backends on a real trained artifact: the token-id path the model process uses gives
exactly what the trainer's tokenization gives, and the pipelined model process answers every
caller with its own batch."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from acgs_server.backend import ArtifactBackend
from acgs_server.schemas import warmup_records
from acgs_server.worker import ProcessBackend, _load_tokenizer
from acgs_contract.constitution import CONSTITUTIONAL_HASH

HASH = CONSTITUTIONAL_HASH


def _workload_prompts(backend: Any, n: int) -> list[str]:
    from acgs_trainer.constitution import load_constitution
    from acgs_trainer.datasets import DATASET_TYPES, generate

    constitution = load_constitution()
    records = [r for t in DATASET_TYPES for r in generate(t, n // len(DATASET_TYPES) + 1, constitution, seed=3)]
    return [backend.format_prompt(r) for r in records[:n]]


@pytest.fixture(scope="module")
def loaded(tiny_artifact: Path) -> ArtifactBackend:
    backend = ArtifactBackend(tiny_artifact, None, HASH, max_new_tokens=6)
    backend.load()
    return backend


def test_token_id_path_matches_the_trainers_padded_tokenization(loaded: ArtifactBackend) -> None:
    import torch

    prompts = _workload_prompts(loaded, 24)
    tokenizer = loaded._tokenizer  # noqa: SLF001 - the reference the served model must agree with
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        output = loaded._model.generate(**encoded, max_new_tokens=6, do_sample=False,  # noqa: SLF001
                                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    expected = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    assert loaded.generate_ids(loaded.encode(prompts)) == expected
    assert loaded.generate(prompts) == expected


def test_http_process_tokenizer_is_used_only_when_it_agrees(loaded: ArtifactBackend) -> None:
    probes = _workload_prompts(loaded, 12) + ["ÄÖÜ 東京 🙂 12.5%", ""]
    info = {"file": loaded.tokenizer_file(), "probes": probes, "ids": loaded.encode(probes)}
    tokenizer = _load_tokenizer(info)
    assert tokenizer is not None
    wrong = {**info, "ids": [ids + [0] for ids in info["ids"]]}
    assert _load_tokenizer(wrong) is None, "a tokenizer.json that disagrees must not be used"
    assert _load_tokenizer({**info, "file": None}) is None


def test_pipelined_model_process_answers_each_caller_in_order(tiny_artifact: Path, loaded: ArtifactBackend) -> None:
    prompts = _workload_prompts(loaded, 48)
    batches = [prompts[i:i + 6] for i in range(0, len(prompts), 6)]
    expected = [loaded.generate(batch) for batch in batches]
    backend = ProcessBackend(log_level="WARNING", artifact_dir=tiny_artifact, expected_digest=None,
                             constitutional_hash=HASH, max_new_tokens=6, torch_threads=1)
    backend.load()
    try:
        assert backend._tokenizer is not None, "the HTTP process tokenizes for this artifact"  # noqa: SLF001
        got: dict[int, list[str]] = {}

        def call(index: int) -> None:
            got[index] = backend.generate(batches[index])

        for _ in range(2):  # several rounds of up to pipeline_depth concurrent callers
            threads = [threading.Thread(target=call, args=(i,)) for i in range(len(batches))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert [got[i] for i in range(len(batches))] == expected
        assert backend.generate([backend.format_prompt(r) for r in warmup_records()][:1])
    finally:
        backend.close()
