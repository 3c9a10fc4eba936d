"""Interaction logs as the server writes them (its own writer), for the flywheel tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from acgs_server.interactions import InteractionLogger, build_record

from acgs_trainer.constitution import CONSTITUTIONAL_HASH, load_constitution
from acgs_trainer.datasets import generate

CARD = SimpleNamespace(constitutional_hash=CONSTITUTIONAL_HASH, name="m", version="0.1.0", digest="sha256:" + "0" * 64)
RULES = load_constitution(None, CONSTITUTIONAL_HASH)


def interactions(n: int, seed: int = 0, decision: str | None = "judge") -> list[dict]:
    """n logged interactions; the production model's decision is the judge's ("judge"), always
    APPROVE, or null."""
    records = generate("constitutional_ai", n, RULES, seed)
    out = []
    for i, r in enumerate(records):
        logged = r["target_output"]["decision"] if decision == "judge" else decision
        out.append(build_record(request_id=f"req-{seed}-{i}", endpoint="/v1/predict", card=CARD, record=r,
                                generated_text=str(logged), decision=logged, latency_ms=1.0, free_text=False))
    return out


def write_log(directory: Path, records: list[dict]) -> None:
    """Through the server's writer; the last file is still open, so a closing marker file follows."""
    writer = InteractionLogger(directory, max_bytes=2500, max_files=1000)
    writer.start()
    for record in records:
        assert writer.log(record)
    writer.close()
    # Roll over once more (as the next write would) so every record above is in a closed file.
    newest = sorted(directory.glob("interactions-*.jsonl"))[-1]
    writer_name, seq = newest.stem.rsplit("-", 1)
    (directory / f"{writer_name}-{int(seq) + 1:0{len(seq)}d}.jsonl").write_text("")
