"""The flywheel's prepare step: from the interaction log to a run's eval and train files.

``prepare(options, constitution)`` takes a snapshot of the log (``flywheel.collect``: closed files,
right hash, valid schema, de-duplicated; its digest anchors the run), lets the judge (the
constitution's rule engine) label every record, measures the production model's live compliance
(its logged decisions against the judge's), splits the snapshot, seeded, into an eval set and a
train file, and charges the train records to the privacy ledger (``flywheel_ledger``), leaving out
the records it retires. Everything lands in the workspace as
``runs/<run-id>/{snapshot,eval,train}.jsonl`` and ``prepare.json`` (the ``PrepareResult``); the
ledger is ``ledger.json`` at the workspace root.

The eval set is drawn from the whole snapshot, retired records included: evaluation trains nothing,
so it spends no DP budget, and an eval set drawn from all current traffic scores candidates on what
production actually sees. Only the train file is restricted by the ledger.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from acgs_contract import flywheel as fw
from acgs_contract.manifest import DIGEST_PATTERN

from .constitution import Constitution
from .dataio import records_digest, write_records
from .datasets import target_output
from .flywheel import canonical, collect
from .flywheel_ledger import Ledger, LedgerError, record_key
from .prompting import scenario_of

#: the fewest records a TrainingJob trains on (``pipeline.MIN_RECORDS``; the data CLI does not
#: import the training stack, so the figure is repeated here)
MIN_TRAIN_RECORDS = 3
RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class PrepareOptions:
    log_dir: Path
    workspace: Path
    run_id: str
    seed: int
    eval_size: int
    #: the share of train.jsonl the TrainingJob keeps for validation (its ``data.valRatio``)
    val_ratio: float
    record_epsilon_limit: float
    finetune_epsilon: float
    finetunes: int
    finetune_delta: float
    expected_digest: str | None = None

    def problems(self) -> list[str]:
        """Every bad option, each naming the flag, the value and what was expected."""
        out = []
        if not RUN_ID.match(self.run_id):
            out.append(f"--run-id={self.run_id}: expected lowercase letters, digits, '-' or '.' "
                       "(a Kubernetes name, at most 63 characters)")
        if self.eval_size < 1:
            out.append(f"--eval-size={self.eval_size}: expected ≥ 1")
        if not 0 <= self.val_ratio < 1:
            out.append(f"--val-ratio={self.val_ratio}: expected 0 ≤ ratio < 1")
        if not self.record_epsilon_limit > 0:
            out.append(f"--record-epsilon-limit={self.record_epsilon_limit}: expected > 0")
        if not self.finetune_epsilon > 0:
            out.append(f"--finetune-epsilon={self.finetune_epsilon}: expected > 0")
        if self.finetunes < 0:
            out.append(f"--finetunes={self.finetunes}: expected ≥ 0")
        if not 0 <= self.finetune_delta < 1:
            out.append(f"--finetune-delta={self.finetune_delta}: expected 0 ≤ δ < 1")
        if self.expected_digest is not None and not re.match(DIGEST_PATTERN, self.expected_digest):
            out.append(f"--expected-digest={self.expected_digest}: expected sha256: and 64 lowercase hex digits")
        return out

    @property
    def run_charge(self) -> float:
        """ε this run spends on each train record: its fine-tunes, composed (a sum)."""
        return self.finetunes * self.finetune_epsilon


def judged(record: Mapping[str, Any], constitution: Constitution) -> dict[str, Any]:
    """The interaction as a dataset record (what ``acgs-data generate`` writes and a TrainingJob
    reads) with the judge's label as its target."""
    _, scenario = scenario_of(record)
    return {"id": record["request_id"], "type": record["type"],
            "constitutional_hash": record["constitutional_hash"], "input": record["input"],
            "target_output": target_output(constitution.evaluate(scenario), constitution)}


def live_compliance(records: Sequence[Mapping[str, Any]], constitution: Constitution) -> tuple[int, float | None]:
    """(records judged, share whose logged decision the judge agrees with); a record the production
    model gave no decision for (null) is not judged."""
    decided = [r for r in records if r.get("decision") is not None]
    if not decided:
        return 0, None
    agree = sum(1 for r in decided if constitution.evaluate(scenario_of(r)[1]).decision == r["decision"])
    return len(decided), agree / len(decided)


def write_jsonl(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)


def _failed(options: PrepareOptions, reason: str, message: str, **fields: Any) -> fw.PrepareResult:
    return fw.PrepareResult(phase=fw.PHASE_FAILED, reason=reason, message=message, run_id=options.run_id,
                            expected_digest=options.expected_digest, **fields)


def prepare(options: PrepareOptions, constitution: Constitution) -> fw.PrepareResult:
    """One run's snapshot, labels, split and ledger charge; a Failed result (never an exception) for
    bad options, too few records, an exhausted budget or an unreadable log or workspace."""
    if problems := options.problems():
        return _failed(options, fw.REASON_INVALID_INPUT, "; ".join(problems))
    try:
        collection = collect(options.log_dir, constitution.constitutional_hash)
    except OSError as exc:
        return _failed(options, fw.REASON_UNREADABLE, f"interaction log {options.log_dir}: {exc}")
    snapshot = [collection.usable[key] for key in sorted(collection.usable)]
    counts = collection.result(constitution.constitutional_hash)
    seen = dict(snapshot_digest=counts.snapshot_digest, records=len(snapshot), excluded=counts.excluded)
    needed = options.eval_size + MIN_TRAIN_RECORDS
    if len(snapshot) < needed:
        return _failed(options, fw.REASON_NOT_ENOUGH_RECORDS,
                       f"{len(snapshot)} usable records in {options.log_dir}: need ≥ {needed} "
                       f"(--eval-size={options.eval_size} + {MIN_TRAIN_RECORDS} to train on)", **seen)
    if options.run_charge > options.record_epsilon_limit:
        return _failed(options, fw.REASON_BUDGET_EXHAUSTED,
                       f"--finetunes={options.finetunes} × --finetune-epsilon={options.finetune_epsilon} = "
                       f"ε {options.run_charge:g} per record passes --record-epsilon-limit="
                       f"{options.record_epsilon_limit:g}: no record can be trained on", **seen)
    judged_count, compliance = live_compliance(snapshot, constitution)
    order = list(range(len(snapshot)))
    random.Random(options.seed).shuffle(order)
    eval_idx = sorted(order[:options.eval_size])
    train_pool = sorted(order[options.eval_size:])
    ledger_path = options.workspace / fw.LEDGER_FILE
    try:
        ledger = Ledger.load(ledger_path)
    except (LedgerError, OSError) as exc:
        return _failed(options, fw.REASON_UNREADABLE, str(exc), **seen)
    ledger.forget_run(options.run_id)
    pool_keys = [record_key(snapshot[i]) for i in train_pool]
    charged, retired = ledger.charge(options.run_id, pool_keys, options.run_charge,
                                     options.finetunes * options.finetune_delta, options.record_epsilon_limit)
    if len(charged) < MIN_TRAIN_RECORDS:
        return _failed(options, fw.REASON_BUDGET_EXHAUSTED,
                       f"{len(charged)} of {len(pool_keys)} train records are within the per-record "
                       f"limit ε {options.record_epsilon_limit:g} after this run's ε {options.run_charge:g}; "
                       f"need ≥ {MIN_TRAIN_RECORDS} ({len(retired)} retired)", **seen,
                       retired_records=len(retired), retired_total=ledger.retired_total(),
                       judged_records=judged_count, live_compliance=compliance)
    charged_set = set(charged)
    eval_records = [judged(snapshot[i], constitution) for i in eval_idx]
    train_records = [judged(snapshot[i], constitution) for i, key in zip(train_pool, pool_keys)
                     if key in charged_set]
    spent = [entry.spent() if (entry := ledger.records.get(record_key(r))) else 0.0 for r in snapshot]
    result = fw.PrepareResult(
        phase=fw.PHASE_SUCCEEDED, reason=fw.REASON_PREPARED, run_id=options.run_id,
        expected_digest=options.expected_digest, **seen, eval_records=len(eval_records),
        train_records=len(train_records), retired_records=len(retired), retired_total=ledger.retired_total(),
        judged_records=judged_count, live_compliance=compliance, budget_max_epsilon=max(spent),
        budget_mean_epsilon=sum(spent) / len(spent), eval_digest=records_digest(eval_records),
        train_digest=records_digest(train_records),
        message=_message(options, len(snapshot), len(eval_records), len(train_records), len(retired),
                         counts.snapshot_digest))
    run = options.workspace / fw.run_dir(options.run_id)
    try:
        run.mkdir(parents=True, exist_ok=True)
        # snapshot.jsonl's own sha256 is the snapshot digest: the same canonical lines, in order
        write_jsonl(run / fw.SNAPSHOT_FILE, [canonical(r) for r in snapshot])
        write_records(eval_records, run / fw.EVAL_FILE)
        write_records(train_records, run / fw.TRAIN_FILE)
        # charged only once the files a TrainingJob reads exist, and before any of them starts
        ledger.save(ledger_path)
        write_jsonl(run / fw.PREPARE_FILE, [json.dumps(result.to_wire(), sort_keys=True)])
    except OSError as exc:
        return _failed(options, fw.REASON_UNREADABLE, f"workspace {options.workspace}: {exc}", **seen)
    return result


def _message(options: PrepareOptions, records: int, n_eval: int, n_train: int, retired: int, digest: str | None
             ) -> str:
    grew = ("" if options.expected_digest in (None, digest)
            else f" (the collector saw {options.expected_digest}: the log changed since)")
    return (f"{records} usable records, snapshot {digest}{grew}; eval {n_eval}, train {n_train} "
            f"(the TrainingJob keeps {options.val_ratio:g} of it for validation); {retired} retired "
            f"this run at ε {options.run_charge:g} per record (limit {options.record_epsilon_limit:g})")
