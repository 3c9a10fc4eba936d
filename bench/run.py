#!/usr/bin/env python3
"""`make bench`: every benchmark, each reported as ratios against a baseline measured in the same
run, written with the machine description to bench/RESULTS.md.

    python bench/run.py [admission burst training quality serving]   (default: all)
    make bench BENCH="admission burst"

A run of some benchmarks keeps the other sections of the previous RESULTS.md as they were (each
section says when and how it was measured); the header's date is this run's.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine  # noqa: E402

# Each module exposes run() -> markdown section. Benchmarks that need torch import it lazily.
BENCHMARKS = {"admission": "admission", "burst": "burst", "training": "training.bench_training",
              "quality": "training.bench_quality", "serving": "serving.bench_serving"}


MARK = "<!-- bench:{} -->"


def previous_sections(text: str) -> dict[str, str]:
    """Sections of an earlier RESULTS.md, by benchmark name (between `<!-- bench:NAME -->` marks)."""
    parts = re.split(r"^<!-- bench:([a-z]+) -->\n", text, flags=re.M)
    return {parts[i]: parts[i + 1].rstrip("\n") + "\n" for i in range(1, len(parts) - 1, 2)}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}: expected some of {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    results = HERE / "RESULTS.md"
    fresh: dict[str, str] = {}
    failed = []
    for name in names:
        print(f"== bench {name}", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ModuleNotFoundError as e:
            fresh[name] = f"## {name}\n\nnot run: {e}\n"
            continue
        try:
            fresh[name] = module.run()
        except Exception:
            failed.append(name)
            fresh[name] = f"## {name}\n\nfailed:\n\n```\n{traceback.format_exc()[-2000:]}\n```\n"
    # Read now, not at the start: another run of other benchmarks may have written meanwhile.
    earlier = previous_sections(results.read_text()) if results.exists() else {}
    sections = []
    for name in BENCHMARKS:
        if name in fresh:
            sections += [MARK.format(name), fresh[name].rstrip("\n") + "\n"]
        elif name in earlier:
            sections += [MARK.format(name), earlier[name]]
    header = ["# Benchmark results", "",
              f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} on: {machine()} "
              f"(this run: {', '.join(fresh)}; other sections kept from earlier runs, each dated).", "",
              "Every figure is measured; ratios compare against a baseline measured in the same run. "
              "Targets are the project's, reported met or not.", ""]
    results.write_text("\n".join(header + sections))
    print(results.read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
