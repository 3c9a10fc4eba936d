"""``acgs-data``: generate rule-labelled datasets and validate data files.

    acgs-data generate --type constitutional_ai --size 500 --out data.jsonl [--seed 0]
    acgs-data validate data.parquet
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from .constitution import CONSTITUTIONAL_HASH, ConstitutionError, load_constitution
from .dataio import DataReadError, read_records, write_records
from .datasets import DATASET_TYPES, check_record, generate
from .exitcodes import INVALID_CONFIG, INVALID_DATA, SUCCESS


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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        constitution = load_constitution(args.constitution, args.constitutional_hash)
    except ConstitutionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID_CONFIG
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
