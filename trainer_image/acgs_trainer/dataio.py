"""Reading and writing records (JSONL / JSON / CSV / Parquet), dedupe, seeded split, data digest.

CSV and Parquet hold one row per record with ``input`` and ``target_output`` as JSON text: the
scenario fields differ between dataset types, so a flat table would be mostly empty columns.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

FORMATS = (".jsonl", ".json", ".csv", ".parquet")
_NESTED = ("input", "target_output")
_COLUMNS = ("id", "type", "constitutional_hash", "input", "target_output")


class DataReadError(ValueError):
    """A data file cannot be read; the message names the file and what is wrong."""


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataReadError(f"{path}: unsupported extension {suffix!r}: expected one of {list(FORMATS)}")
    return suffix


def write_records(records: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    fmt = _format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=True) + "\n")
    elif fmt == ".json":
        path.write_text(json.dumps(records, indent=1, sort_keys=True), encoding="utf-8")
    else:
        rows = [_flatten(r) for r in records]
        if fmt == ".csv":
            with path.open("w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(_COLUMNS))
                writer.writeheader()
                writer.writerows(rows)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({c: [row[c] for row in rows] for c in _COLUMNS},
                             schema=pa.schema([(c, pa.string()) for c in _COLUMNS]))
            pq.write_table(table, path)
    return path


def _flatten(record: dict[str, Any]) -> dict[str, str | None]:
    row: dict[str, str | None] = {}
    for c in _COLUMNS:
        value = record.get(c)
        if c in _NESTED:
            row[c] = None if value is None else json.dumps(value, sort_keys=True)
        else:
            row[c] = None if value is None else str(value)
    return row


def _unflatten(row: dict[str, Any], where: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value == "":
            continue  # an empty cell is a missing field, which validation then names
        if key in _NESTED and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # left as text: validation reports the bad structure for this record
        record[key] = value
    return record


def read_records(path: str | Path) -> list[Any]:
    """All records of a file, or of every supported file in a directory (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS)
        if not files:
            raise DataReadError(f"{path}: directory holds no {'/'.join(FORMATS)} files")
        return [r for f in files for r in read_records(f)]
    fmt = _format_of(path)
    if not path.is_file():
        raise DataReadError(f"{path}: no such file")
    try:
        if fmt == ".jsonl":
            records = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataReadError(f"{path}:{n}: not JSON: {exc.msg}") from exc
            return records
        if fmt == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("records"), list):
                data = data["records"]
            if not isinstance(data, list):
                raise DataReadError(f"{path}: expected a JSON array of records")
            return data
        if fmt == ".csv":
            with path.open(encoding="utf-8", newline="") as f:
                return [_unflatten(row, f"{path}:{i}") for i, row in enumerate(csv.DictReader(f))]
        import pyarrow.parquet as pq

        return [_unflatten(row, f"{path}:{i}") for i, row in enumerate(pq.read_table(path).to_pylist())]
    except DataReadError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise DataReadError(f"{path}: cannot read as {fmt}: {exc}") from exc


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dedupe(records: list[Any]) -> tuple[list[Any], int]:
    """Drop records whose (type, scenario) was already seen; returns (kept, removed).

    Malformed records are compared whole; the constitutional filter drops them later by name.
    """
    seen: set[str] = set()
    kept = []
    for r in records:
        inp = r.get("input") if isinstance(r, dict) else None
        key = canonical([r.get("type"), inp.get("scenario")] if isinstance(inp, dict)
                        else ["record", r])
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept, len(records) - len(kept)


@dataclass(frozen=True)
class Split:
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    eval: list[dict[str, Any]]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "eval": len(self.eval)}


def split(records: list[dict[str, Any]], seed: int, val_ratio: float, eval_ratio: float) -> Split:
    """Seeded split. Records are first sorted by content so the split does not depend on file order."""
    ordered = sorted(records, key=canonical)
    random.Random(seed).shuffle(ordered)
    n = len(ordered)
    n_eval = max(1, round(n * eval_ratio)) if eval_ratio > 0 and n >= 3 else 0
    n_val = max(1, round(n * val_ratio)) if val_ratio > 0 and n >= 3 else 0
    return Split(train=ordered[n_eval + n_val:], val=ordered[n_eval:n_eval + n_val],
                 eval=ordered[:n_eval])


def records_digest(records: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(canonical(r).encode())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def file_digest(path: str | Path) -> str:
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()
