"""``acgs-data``: generate rule-labelled datasets and validate data files.

    acgs-data generate --type constitutional_ai --size 500 --out data.jsonl [--seed 0]
    acgs-data validate data.parquet
    acgs-data flywheel-collect --dir /interactions [--termination-log PATH]
    acgs-data flywheel-prepare --log-dir /interactions/interactions --workspace /workspace --run-id RUN
        --eval-size E [--val-ratio V] [--seed S] [--expected-digest sha256:...]
        --record-epsilon-limit L --finetune-epsilon EPS --finetunes K [--finetune-delta D]
        [--termination-log PATH]

Exit codes: 0 done, 2 bad arguments or constitution, 3 not enough usable records or budget
exhausted (flywheel-prepare; its result says which), 1 anything else (an unreadable log).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from acgs_contract import flywheel as fw
from acgs_contract.result import SUCCEEDED

from .constitution import CONSTITUTIONAL_HASH, Constitution, ConstitutionError, load_constitution
from .dataio import DataReadError, read_records, write_records
from .datasets import DATASET_TYPES, check_record, generate
from .exitcodes import INVALID_CONFIG, INVALID_DATA, SUCCESS, UNEXPECTED_ERROR
from .flywheel import collect_result
from .flywheel_prepare import PrepareOptions, prepare
from .reporting import compact_result, write_result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acgs-data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--constitution", help="constitution YAML (default: $ACGS_CONSTITUTION_PATH "
                   "or the packaged one)")
    p.add_argument("--constitutional-hash", default=CONSTITUTIONAL_HASH)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write N scenarios with rule-derived targets")
    g.add_argument("--type", required=True, choices=[*DATASET_TYPES, "all"])
    g.add_argument("--size", required=True, type=int, help="records per type")
    g.add_argument("--out", required=True, help="output file: .jsonl, .json, .csv or .parquet")
    g.add_argument("--seed", type=int, default=0)
    v = sub.add_parser("validate", help="report the compliance rate and every bad record")
    v.add_argument("file")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    c = sub.add_parser("flywheel-collect", help="count the usable records of an interaction log (JSON result)")
    c.add_argument("--dir", required=True, help="the server's interaction-log directory")
    c.add_argument("--termination-log", help="also write the result here (the collector Job's "
                   "termination-message path)")
    fp = sub.add_parser("flywheel-prepare", help="snapshot, judge, split and charge a flywheel run "
                        "(files in the workspace, JSON result)")
    fp.add_argument("--log-dir", required=True, help="the server's interaction-log directory")
    fp.add_argument("--workspace", required=True, help="the policy's workspace (ledger.json, runs/)")
    fp.add_argument("--run-id", required=True)
    fp.add_argument("--seed", type=int, default=0, help="seed of the eval/train split")
    fp.add_argument("--eval-size", type=int, required=True, help="records in the eval set")
    fp.add_argument("--val-ratio", type=float, default=0.1,
                    help="share of train.jsonl the TrainingJob keeps for validation (recorded)")
    fp.add_argument("--expected-digest", help="the collector's snapshot digest (recorded; a "
                    "different one means the log grew, not an error)")
    fp.add_argument("--record-epsilon-limit", type=float, required=True,
                    help="the most ε any record may spend across runs")
    fp.add_argument("--finetune-epsilon", type=float, required=True, help="ε of each fine-tune")
    fp.add_argument("--finetunes", type=int, required=True, help="fine-tunes this run trains on train.jsonl")
    fp.add_argument("--finetune-delta", type=float, default=1e-5, help="δ of each fine-tune")
    fp.add_argument("--termination-log", help="also write the result here")
    return p


#: flywheel-prepare's failure reasons that are about the data, not the program
_DATA_REASONS = (fw.REASON_NOT_ENOUGH_RECORDS, fw.REASON_BUDGET_EXHAUSTED)


def _prepare(args: argparse.Namespace, constitution: Constitution) -> int:
    result = prepare(PrepareOptions(
        log_dir=Path(args.log_dir), workspace=Path(args.workspace), run_id=args.run_id, seed=args.seed,
        eval_size=args.eval_size, val_ratio=args.val_ratio, record_epsilon_limit=args.record_epsilon_limit,
        finetune_epsilon=args.finetune_epsilon, finetunes=args.finetunes, finetune_delta=args.finetune_delta,
        expected_digest=args.expected_digest), constitution)
    print(compact_result(result))
    if args.termination_log:
        write_result(result, None, args.termination_log)
    if result.phase == SUCCEEDED:
        return SUCCESS
    if result.reason == fw.REASON_INVALID_INPUT:
        return INVALID_CONFIG
    return INVALID_DATA if result.reason in _DATA_REASONS else UNEXPECTED_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        constitution = load_constitution(args.constitution, args.constitutional_hash)
    except ConstitutionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID_CONFIG
    if args.command == "flywheel-prepare":
        return _prepare(args, constitution)
    if args.command == "flywheel-collect":
        result = collect_result(Path(args.dir), args.constitutional_hash)
        print(compact_result(result))
        if args.termination_log:
            write_result(result, None, args.termination_log)
        return SUCCESS if result.phase == SUCCEEDED else UNEXPECTED_ERROR
    if args.command == "generate":
        if args.size < 1:
            print(f"error: --size={args.size}: must be ≥ 1", file=sys.stderr)
            return INVALID_CONFIG
        types = DATASET_TYPES if args.type == "all" else (args.type,)
        records = [r for t in types for r in generate(t, args.size, constitution, args.seed)]
        try:
            path = write_records(records, args.out)
        except (DataReadError, OSError) as exc:
            print(f"error: --out={args.out}: {exc}", file=sys.stderr)
            return INVALID_CONFIG
        print(f"wrote {len(records)} records to {path}")
        return SUCCESS
    try:
        records = read_records(args.file)
    except DataReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID_DATA
    bad: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        check = check_record(record, constitution, args.constitutional_hash)
        if check.problems:
            rid = record.get("id") if isinstance(record, dict) else None
            bad.append({"index": index, "id": rid,
                        "problems": [{"kind": p.kind, "message": p.message} for p in check.problems]})
    total = len(records)
    rate = (total - len(bad)) / total if total else 0.0
    if args.json:
        print(json.dumps({"file": args.file, "records": total, "compliant": total - len(bad),
                          "complianceRate": rate, "bad": bad}, indent=1))
    else:
        print(f"{args.file}: {total - len(bad)}/{total} records compliant "
              f"(compliance rate {rate:.2%})")
        for b in bad:
            for p in b["problems"]:
                print(f"  record {b['index']} (id={b['id']}): {p['kind']}: {p['message']}")
    return SUCCESS if total and not bad else INVALID_DATA


if __name__ == "__main__":
    sys.exit(main())
