#!/usr/bin/env python3
"""`make bench`: every benchmark, each reported as ratios against a baseline measured in the same
run, written with the machine description to bench/RESULTS.md.

    python bench/run.py [admission serving training ...]
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine  # noqa: E402

# Each module exposes run() -> markdown section. Benchmarks that need torch import it lazily.
BENCHMARKS = {"admission": "admission", "training": "training.bench_training",
              "quality": "training.bench_quality", "serving": "serving.bench_serving"}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    sections, failed = [], []
    for name in names:
        print(f"== bench {name}", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ModuleNotFoundError as e:
            sections.append(f"## {name}\n\nnot run: {e}\n")
            continue
        try:
            sections.append(module.run())
        except Exception:
            failed.append(name)
            sections.append(f"## {name}\n\nfailed:\n\n```\n{traceback.format_exc()[-2000:]}\n```\n")
    header = ["# Benchmark results", "",
              f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} on: {machine()}.", "",
              "Every figure is measured; ratios compare against a baseline measured in the same run. "
              "Targets are the project's, reported met or not.", ""]
    (HERE / "RESULTS.md").write_text("\n".join(header + sections))
    print((HERE / "RESULTS.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
