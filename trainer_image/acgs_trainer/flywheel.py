"""The flywheel's collect step: which logged interactions a run may use.

``collect(directory, expected_hash)`` reads the server's interaction log
(``acgs_server.interactions``: ``interactions-<host>-<start>-<seq>.jsonl``, one JSON record a
line). Only closed files are read: a writer (one host and start time) appends to its newest file
only, so that one is skipped. A record is usable when its constitutional hash is present and the
expected one, it has the interaction-record schema (version, ids, endpoint, a dataset type and a
valid scenario of that type) and no record with the same request content (type and input) was kept
before. The snapshot digest is sha256 over the usable records, each as canonical JSON, sorted by
their request content, so the same log gives the same digest whatever order files were read in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from acgs_contract import flywheel as contract
from acgs_contract.result import FAILED, SUCCEEDED

from .constitution import DECISIONS
from .datasets import SCHEMAS

RECORD_SCHEMA_VERSION = 1  # acgs_server.interactions.RECORD_SCHEMA_VERSION (the trainer image has no server)
LOG_FILE = re.compile(r"^(?P<writer>interactions-.+)-(?P<seq>\d+)\.jsonl$")


@dataclass
class Collection:
    closed_files: list[Path] = field(default_factory=list)
    open_files: list[Path] = field(default_factory=list)
    seen: int = 0
    usable: dict[str, dict[str, Any]] = field(default_factory=dict)  # request-content key → record
    excluded: Counter[str] = field(default_factory=Counter)

    def snapshot_digest(self) -> str:
        sha = hashlib.sha256()
        for key in sorted(self.usable):
            sha.update(canonical(self.usable[key]).encode())
            sha.update(b"\n")
        return f"sha256:{sha.hexdigest()}"

    def result(self, expected_hash: str) -> contract.CollectResult:
        excluded = {reason: self.excluded.get(reason, 0) for reason in contract.EXCLUSION_REASONS}
        return contract.CollectResult(
            phase=SUCCEEDED, reason="Collected", constitutional_hash=expected_hash,
            message=(f"{len(self.usable)} usable of {self.seen} records in {len(self.closed_files)} closed "
                     f"files ({len(self.open_files)} still being written, not read)"),
            files_closed=len(self.closed_files), files_open=len(self.open_files), records_seen=self.seen,
            records_usable=len(self.usable), excluded=excluded, snapshot_digest=self.snapshot_digest())


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def split_files(directory: Path) -> tuple[list[Path], list[Path]]:
    """(closed, open): each writer's newest file is open (it may still be appended to)."""
    by_writer: dict[str, list[tuple[int, Path]]] = {}
    for path in directory.iterdir():
        match = LOG_FILE.match(path.name)
        if match and path.is_file():
            by_writer.setdefault(match["writer"], []).append((int(match["seq"]), path))
    closed: list[Path] = []
    open_: list[Path] = []
    for files in by_writer.values():
        files.sort()
        closed.extend(path for _, path in files[:-1])
        open_.append(files[-1][1])
    return sorted(closed), sorted(open_)


def schema_problem(record: Mapping[str, Any]) -> str | None:
    """Why ``record`` is not an interaction record (None when it is one)."""
    if record.get("schema_version") != RECORD_SCHEMA_VERSION:
        return f"schema_version={record.get('schema_version')!r}: expected {RECORD_SCHEMA_VERSION}"
    for name in ("request_id", "timestamp", "endpoint"):
        if not isinstance(record.get(name), str) or not record[name]:
            return f"{name}={record.get(name)!r}: expected a non-empty string"
    dataset_type = record.get("type")
    if dataset_type not in SCHEMAS:
        return f"type={dataset_type!r}: expected one of {sorted(SCHEMAS)}"
    inp = record.get("input")
    if not isinstance(inp, Mapping) or not isinstance(inp.get("scenario"), Mapping):
        return "input.scenario: expected an object"
    for name, spec in SCHEMAS[dataset_type].items():
        if name not in inp["scenario"]:
            return f"missing field input.scenario.{name}"
        if (why := spec.problem(inp["scenario"][name])) is not None:
            return f"input.scenario.{name}={inp['scenario'][name]!r}: {why}"
    if record.get("decision") is not None and record["decision"] not in DECISIONS:
        return f"decision={record['decision']!r}: expected one of {list(DECISIONS)} or null"
    return None


def exclusion(record: Any, expected_hash: str) -> str | None:
    """The reason ``record`` is left out (``contract.EXCLUDED_*``), before de-duplication."""
    if not isinstance(record, Mapping):
        return contract.EXCLUDED_UNPARSABLE
    if not record.get("constitutional_hash"):
        return contract.EXCLUDED_MISSING_HASH
    inp = record.get("input")
    inner = inp.get("constitutional_hash", expected_hash) if isinstance(inp, Mapping) else expected_hash
    if record["constitutional_hash"] != expected_hash or inner != expected_hash:
        return contract.EXCLUDED_WRONG_HASH
    if schema_problem(record) is not None:
        return contract.EXCLUDED_INVALID
    return None


def _records(path: Path) -> list[Any]:
    out: list[Any] = []
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append(None)  # a torn or corrupt line
    return out


def collect(directory: Path, expected_hash: str) -> Collection:
    """Everything a flywheel run may use from ``directory`` (a missing directory holds nothing yet)."""
    collection = Collection()
    if not directory.is_dir():
        return collection
    collection.closed_files, collection.open_files = split_files(directory)
    candidates: list[tuple[str, dict[str, Any]]] = []
    for path in collection.closed_files:
        for record in _records(path):
            collection.seen += 1
            reason = exclusion(record, expected_hash)
            if reason:
                collection.excluded[reason] += 1
            else:
                candidates.append((canonical([record["type"], record["input"]]), record))
    # Keep the earliest of each request content (by time, then id): the same choice whatever
    # order the files were listed in.
    candidates.sort(key=lambda item: (item[0], item[1]["timestamp"], item[1]["request_id"]))
    for key, record in candidates:
        if key in collection.usable:
            collection.excluded[contract.EXCLUDED_DUPLICATE] += 1
        else:
            collection.usable[key] = record
    return collection


def collect_result(directory: Path, expected_hash: str) -> contract.CollectResult:
    """``collect`` as the contract's result; an unreadable directory is a Failed result, not a crash."""
    try:
        return collect(directory, expected_hash).result(expected_hash)
    except OSError as exc:
        return contract.CollectResult(phase=FAILED, reason="LogUnreadable", constitutional_hash=expected_hash,
                                      message=f"interaction log {directory}: {exc}")
