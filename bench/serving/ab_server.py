"""A/B the server against an older checkout of itself, interleaved, in one run on one machine.

    git archive <commit> server_image | tar -x -C /tmp/old
    python bench/serving/ab_server.py --artifact DIR --old /tmp/old/server_image --rounds 3

Each round measures, for each workload: (b) raw batched generate in this process, then the old and
the new server (order alternating between rounds) with bench_serving's exact load, then (b) again.
Ratios are taken within a round, so background load on a shared machine cancels out as far as it
can. Prints one line per measurement and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving as bench  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifact", type=Path, required=True)
    p.add_argument("--old", type=Path, required=True, help="server_image directory of the old checkout")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=12.0)
    p.add_argument("--workloads", default="eos,fixed")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server_image"))
    from acgs_server.backend import ArtifactBackend

    load_args = argparse.Namespace(max_batch_size=32, max_batch_wait_ms=5.0, max_new_tokens=16, server_threads=1,
                                   concurrency=64, duration=args.duration, requests=100000)
    bodies = bench.workload(30000)
    variants = {
        "old": ([sys.executable, "-m", "acgs_server"], {**os.environ, "PYTHONPATH": str(args.old)}),
        "new": ([sys.executable, "-m", "acgs_server"],
                {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "server_image")}),
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="ab-serving-") as tmp:
        work = Path(tmp)
        for key in args.workloads.split(","):
            min_new = 0 if key == "eos" else 16
            backend = ArtifactBackend(args.artifact, None, bench.HASH, 16, torch_threads=1, min_new_tokens=min_new)
            backend.load()
            prompts = [backend.format_prompt({"type": b["type"], "scenario": b["scenario"]}) for b in bodies[:1920]]
            for round_no in range(args.rounds):
                raw = [bench.measure_batched(backend, prompts, 32).rps]
                order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
                served = {}
                for name in order:
                    command, env = variants[name]
                    m, _ = bench.measure_server(args.artifact, bodies, load_args, work, min_new, command, env)
                    served[name] = m
                raw.append(bench.measure_batched(backend, prompts, 32).rps)
                b = statistics.fmean(raw)
                for name, m in served.items():
                    row = {"workload": key, "round": round_no, "variant": name, "rps": round(m.rps, 1),
                           "p50_ms": round(m.p50_ms or 0, 1), "p99_ms": round(m.p99_ms or 0, 1),
                           "batch_mean": round(m.batch_mean or 0, 1), "errors": m.errors,
                           "raw_batched_rps": round(b, 1), "c_over_b": round(m.rps / b, 3)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = {}
    for key in args.workloads.split(","):
        for name in variants:
            mine = [r for r in rows if r["workload"] == key and r["variant"] == name]
            summary[f"{key}/{name}"] = {"c_over_b_median": statistics.median(r["c_over_b"] for r in mine),
                                        "rps_median": statistics.median(r["rps"] for r in mine),
                                        "p99_median": statistics.median(r["p99_ms"] for r in mine)}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
