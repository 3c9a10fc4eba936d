"""The per-record privacy ledger of a flywheel policy: how much DP budget each logged interaction
has spent across runs, and which records are retired.

A record is keyed by the sha256 of its canonical request content (dataset type and input, the key
the collector de-duplicates by), so the same request logged again is the same record. Each run that
puts a record in its train set charges it ``finetunes × finetune_epsilon`` (and as much δ) at
prepare time, before any training, so a run that fails later never under-counts.

Composition is the basic (sequential) composition theorem (Dwork & Roth 2014, Thm 3.16): k
mechanisms that are (εᵢ, δᵢ)-DP each are, together and even chosen adaptively, (Σεᵢ, Σδᵢ)-DP. Each
fine-tune is (ε, δ)-DP for every record of its data: the trainer calibrates its noise to the target
ε with the RDP accountant and halts before passing it, so the target is an upper bound of what it
spends. A sum of upper bounds is an upper bound of the composition; RDP composition would be
tighter but needs each run's noise, sample rate and step count, which are unknown when the ledger
charges (before training). So the ledger may over-count, never under-count.

A record whose cumulative ε plus this run's charge would pass the limit is retired: it is kept out
of train sets from then on (retirement is final: the remaining budget is not handed out later in
smaller pieces). Re-preparing the same run id replaces that run's charges instead of adding to
them, so a retried prepare Job does not charge twice. Written atomically (tmp file + rename).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

LEDGER_VERSION = 1


def record_key(record: Mapping[str, Any]) -> str:
    """sha256 of the record's canonical request content (type and input)."""
    content = json.dumps([record.get("type"), record.get("input")], sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False)
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


@dataclass
class RecordBudget:
    #: run id → ε charged by that run
    charges: dict[str, float] = field(default_factory=dict)
    #: run id → δ charged by that run
    deltas: dict[str, float] = field(default_factory=dict)
    #: the run that retired the record (None while it may still train)
    retired_by: str | None = None

    def spent(self, excluding: str | None = None) -> float:
        return sum(eps for run, eps in self.charges.items() if run != excluding)

    def to_json(self) -> dict[str, Any]:
        return {"charges": self.charges, "deltas": self.deltas, "retiredBy": self.retired_by}


class LedgerError(ValueError):
    """The ledger file exists but is not a ledger."""


@dataclass
class Ledger:
    records: dict[str, RecordBudget] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "Ledger":
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != LEDGER_VERSION:
                raise LedgerError(f"{path}: version={data.get('version')!r}: expected {LEDGER_VERSION}")
            return cls({key: RecordBudget({str(k): float(v) for k, v in entry.get("charges", {}).items()},
                                          {str(k): float(v) for k, v in entry.get("deltas", {}).items()},
                                          entry.get("retiredBy"))
                        for key, entry in data["records"].items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LedgerError(f"{path}: not a privacy ledger: {exc}") from exc

    def save(self, path: Path) -> None:
        data = {"version": LEDGER_VERSION,
                "records": {key: self.records[key].to_json() for key in sorted(self.records)}}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def retired_total(self) -> int:
        return sum(1 for entry in self.records.values() if entry.retired_by is not None)

    def forget_run(self, run_id: str) -> None:
        """Undo every charge and retirement by ``run_id``: a retried prepare decides afresh from the
        other runs' charges (its snapshot may have grown in between)."""
        for entry in self.records.values():
            entry.charges.pop(run_id, None)
            entry.deltas.pop(run_id, None)
            if entry.retired_by == run_id:
                entry.retired_by = None

    def charge(self, run_id: str, keys: Iterable[str], epsilon: float, delta: float, limit: float
               ) -> tuple[list[str], list[str]]:
        """Charge ``run_id``'s ``epsilon`` (and ``delta``) to each record that stays within
        ``limit``; retire the others (and keep the retired ones out). Returns (charged keys, retired
        keys), both in the order given. Call ``forget_run`` first when the run may have been
        prepared before."""
        charged: list[str] = []
        retired: list[str] = []
        for key in keys:
            entry = self.records.get(key, RecordBudget())
            # a relative tolerance: 0.1 + 0.1 + 0.1 charged against a limit of 0.3 is within it
            if entry.retired_by is None and entry.spent() + epsilon <= limit * (1 + 1e-9):
                charged.append(key)
                if epsilon == 0 and delta == 0:
                    continue  # a run without fine-tunes trains nothing: no entry to keep
                entry.charges[run_id] = epsilon
                entry.deltas[run_id] = delta
            else:
                entry.retired_by = entry.retired_by or run_id
                retired.append(key)
            self.records[key] = entry
        return charged, retired
