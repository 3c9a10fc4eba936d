"""The model backends on a real trained artifact: the served generation is the trainer's evaluation
generation (one implementation), and the pipelined model process answers every
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


def test_served_answers_are_the_trainers_evaluation_answers_and_padding_changes_none(
        loaded: ArtifactBackend) -> None:
    """One generation for scoring and serving (acgs_trainer.generation): the served model answers
    exactly what the trainer's evaluation scored, and left padding a batch changes no answer."""
    from acgs_trainer.modeling import generate_continuations

    prompts = _workload_prompts(loaded, 24)
    served = loaded.generate(prompts)
    assert loaded.generate_ids(loaded.encode(prompts)) == served
    scored = generate_continuations(loaded._model, loaded._tokenizer, prompts, max_new_tokens=6,  # noqa: SLF001
                                    batch_size=8)
    assert served == scored
    alone = [loaded.generate([prompt])[0] for prompt in prompts]
    assert served == alone, "a prompt's answer must not depend on its batch-mates' lengths"
    assert len({len(ids) for ids in loaded.encode(prompts)}) > 1, "the batch really was padded"


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
