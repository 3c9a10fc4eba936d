"""Profile `acgs-serve` under the serving benchmark's load: py-spy on the HTTP process and on the
model process at once, plus a summary of where each one's samples went.

    python bench/serving/profile_server.py --artifact DIR [--min-new-tokens 0] [--seconds 15]

Writes `<out>/http.txt` and `<out>/model.txt` (py-spy raw collapsed stacks, idle threads
included, one line per stack) and prints the top self/inclusive frames per thread. The server is
started exactly as bench_serving.py starts it (same flags), so the profile is of the benchmark's
run shape.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving as bench  # noqa: E402


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields after the comm: state, ppid, ...
            found.append(int(stat.parent.name))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def summarize(path: Path, top: int = 25) -> str:
    """Per thread: share of samples, then the hottest leaf frames and the hottest frames anywhere."""
    threads: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    leaves: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0]
        totals[thread] += count
        leaves[thread][frames[-1]] += count
        for frame in set(frames[1:]):
            threads[thread][frame] += count
    out = []
    grand = sum(totals.values())
    for thread, total in totals.most_common():
        out.append(f"== {thread}: {total} samples ({100 * total / grand:.1f} % of all)")
        out.append("  -- leaf (self) --")
        for frame, n in leaves[thread].most_common(top):
            out.append(f"  {100 * n / total:5.1f} %  {frame}")
        out.append("  -- inclusive --")
        for frame, n in threads[thread].most_common(top):
            out.append(f"  {100 * n / total:5.1f} %  {frame}")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifact", type=Path, required=True)
    p.add_argument("--min-new-tokens", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    p.add_argument("--server-threads", type=int, default=1)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    p.add_argument("--no-spy", action="store_true", help="CPU accounting only, no sampling")
    p.add_argument("--out", type=Path, default=Path("/tmp/serving-profile"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server_image"))
    bodies = bench.workload(20000)
    port = bench._free_port()
    cmd = [bench._tool("acgs-serve"), "--artifact", str(args.artifact), "--host", "127.0.0.1",
           "--port", str(port), "--max-batch-size", str(args.max_batch_size),
           "--max-batch-wait-ms", str(args.max_batch_wait_ms), "--max-new-tokens", str(args.max_new_tokens),
           "--min-new-tokens", str(args.min_new_tokens), "--interaction-log-dir", str(args.out / "interactions"),
           "--log-level", "WARNING", "--torch-threads", str(args.server_threads)]
    metrics_port = bench._free_port()
    proc = subprocess.Popen(cmd, stdout=(args.out / "server.log").open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "ACGS_METRICS_PORT": str(metrics_port)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if bench._get_json(base + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("server did not become ready")
        asyncio.run(bench._load(base + "/v1/predict", bodies[:256], args.concurrency, 30))
        # spawn also starts multiprocessing's resource tracker: the model is the spawn_main child.
        model_pid = next((c for c in _children(proc.pid)
                          if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()), None)
        targets = {"http": proc.pid, "model": model_pid}
        spies = []
        for name, pid in targets.items():
            if pid is None or args.no_spy:
                continue
            spy_cmd = [bench._tool("py-spy"), "record", "-p", str(pid), "-f", "raw", "-t", "-r", str(args.rate),
                       "-d", str(int(args.seconds)), "--nonblocking", "-o", str(args.out / f"{name}.txt")]
            spy_cmd += ["--gil"] if args.gil else ["--idle"]
            spies.append(subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        pids = {"http": proc.pid, "model": model_pid, "client (this process)": os.getpid()}
        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items() if pid is not None}
        latencies, errors, seconds = asyncio.run(
            bench._load(base + "/v1/predict", bodies, args.concurrency, args.seconds - 1))
        cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items() if pid is not None}
        for spy in spies:
            spy.wait(60)
        print("CPU use during the load (cores): " + ", ".join(f"{k} {v / seconds:.2f}" for k, v in cpu.items()))
        print(f"load: {len(latencies) / seconds:.1f} req/s over {seconds:.1f}s, errors {errors}, "
              f"p99 {bench.common.percentile(latencies, 0.99):.1f} ms")
        metrics_text = bench.metrics_text(base, metrics_port)
        buckets = [line for line in metrics_text.splitlines() if line.startswith("acgs_server_batch_size_bucket")]
        print(f"mean batch {bench._batch_mean(metrics_text):.1f}; "
              + "cumulative ≤size:count " + " ".join(
                  line.split('le="')[1].split('"')[0] + ":" + line.rsplit(" ", 1)[1] for line in buckets))
        for name in targets:
            path = args.out / f"{name}.txt"
            if path.exists():
                text = summarize(path)
                (args.out / f"{name}-summary.txt").write_text(text)
                print(f"\n######## {name} process\n{text}")
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
