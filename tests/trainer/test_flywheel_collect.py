"""The flywheel's collect step on real interaction logs written by the server's own writer
(acgs_server.interactions): rotated files, a file still being written, torn lines, wrong hashes,
invalid records and duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from acgs_contract import flywheel as contract
from acgs_server.interactions import InteractionLogger, build_record

from acgs_trainer.constitution import CONSTITUTIONAL_HASH, load_constitution
from acgs_trainer.datasets import generate
from acgs_trainer.flywheel import collect, split_files

CARD = SimpleNamespace(constitutional_hash=CONSTITUTIONAL_HASH, name="m", version="0.1.0", digest="sha256:" + "0" * 64)


def interactions(n: int, seed: int = 0) -> list[dict]:
    records = generate("constitutional_ai", n, load_constitution(None, CONSTITUTIONAL_HASH), seed)
    return [build_record(request_id=f"req-{seed}-{i}", endpoint="/v1/predict", card=CARD, record=r,
                         generated_text="APPROVE", decision="APPROVE", latency_ms=1.0, free_text=False)
            for i, r in enumerate(records)]


def write_log(directory: Path, records: list[dict], max_bytes: int = 4000) -> None:
    """Through the server's writer, rotating every few records."""
    writer = InteractionLogger(directory, max_bytes=max_bytes, max_files=1000)
    writer.start()
    for record in records:
        assert writer.log(record)
    writer.close()


def test_only_closed_files_are_read_and_every_record_counted(tmp_path):
    write_log(tmp_path, interactions(40))
    closed, open_ = split_files(tmp_path)
    assert len(closed) >= 2 and len(open_) == 1
    in_open = sum(1 for _ in open_[0].open())
    result = collect(tmp_path, CONSTITUTIONAL_HASH).result(CONSTITUTIONAL_HASH)
    assert result.records_seen == 40 - in_open
    assert result.records_usable == result.records_seen - result.excluded["duplicate"]
    assert result.files_closed == len(closed) and result.files_open == 1


def test_bad_records_are_excluded_by_reason(tmp_path):
    good = interactions(6)
    wrong = dict(good[0], constitutional_hash="0000000000000000", request_id="w")
    inner_wrong = dict(good[1], input={**good[1]["input"], "constitutional_hash": "1111111111111111"})
    missing = {k: v for k, v in good[2].items() if k != "constitutional_hash"}
    invalid = dict(good[3], input={"scenario": {**good[3]["input"]["scenario"], "actor_role": 7}})
    old_schema = dict(good[4], schema_version=0)
    duplicate = dict(good[5], request_id="dup", timestamp="2999-01-01T00:00:00.000+00:00", decision="DENY")
    lines = [json.dumps(r) for r in [*good, wrong, inner_wrong, missing, invalid, old_schema, duplicate]]
    lines.append('{"schema_version": 1, "request_id": "torn", "inp')  # a torn write
    (tmp_path / "interactions-a-20260101T000000Z-00001.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "interactions-a-20260101T000000Z-00002.jsonl").write_text(json.dumps(good[0]) + "\n")
    result = collect(tmp_path, CONSTITUTIONAL_HASH).result(CONSTITUTIONAL_HASH)
    assert result.records_seen == len(lines)
    assert result.excluded == {"unparsable": 1, "missingHash": 1, "wrongHash": 2, "invalidSchema": 2,
                               "duplicate": 1}
    assert result.records_usable == 6
    kept = collect(tmp_path, CONSTITUTIONAL_HASH).usable
    assert "dup" not in {r["request_id"] for r in kept.values()}  # the earlier of two duplicates stays


def write_files(directory: Path, writer: str, chunks: list[list[dict]]) -> None:
    directory.mkdir()
    for seq, chunk in enumerate(chunks, 1):
        (directory / f"interactions-{writer}-{seq:05d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chunk))


def test_snapshot_digest_is_reproducible_and_tracks_content(tmp_path):
    records = interactions(30)
    first, second = tmp_path / "a", tmp_path / "b"
    write_files(first, "h1-20260101T000000Z", [records[:10], records[10:], []])
    # another writer, order and file boundaries; the same records
    write_files(second, "h2-20260102T000000Z", [list(reversed(records[5:])), records[:5], records[:3]])
    a = collect(first, CONSTITUTIONAL_HASH)
    assert len(a.usable) > 0
    assert a.snapshot_digest() == collect(second, CONSTITUTIONAL_HASH).snapshot_digest()
    path = split_files(first)[0][0]
    record = json.loads(path.read_text().splitlines()[0])
    record["decision"] = "DENY" if record["decision"] != "DENY" else "APPROVE"
    path.write_text("\n".join([json.dumps(record), *path.read_text().splitlines()[1:]]) + "\n")
    assert collect(first, CONSTITUTIONAL_HASH).snapshot_digest() != a.snapshot_digest()


def test_missing_directory_holds_nothing(tmp_path):
    result = collect(tmp_path / "absent", CONSTITUTIONAL_HASH).result(CONSTITUTIONAL_HASH)
    assert (result.records_seen, result.records_usable, result.files_closed) == (0, 0, 0)


def test_cli_prints_and_writes_the_contract_result(tmp_path):
    write_log(tmp_path / "log", interactions(20))
    term = tmp_path / "termination-log"
    out = subprocess.run([sys.executable, "-m", "acgs_trainer.data_cli", "flywheel-collect",
                          "--dir", str(tmp_path / "log"), "--termination-log", str(term)],
                         capture_output=True, text=True, check=True)
    printed = contract.parse_collect_result(json.loads(out.stdout))
    written = contract.parse_collect_result(json.loads(term.read_text()))
    assert printed is not None and printed == written
    assert printed.records_usable == collect(tmp_path / "log", CONSTITUTIONAL_HASH).result(
        CONSTITUTIONAL_HASH).records_usable > 0


@pytest.mark.parametrize("name", ["notes.txt", "interactions-x.jsonl"])
def test_other_files_are_ignored(tmp_path, name):
    (tmp_path / name).write_text("{}\n")
    assert split_files(tmp_path) == ([], [])
