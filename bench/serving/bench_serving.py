"""Serving benchmark: the server under HTTP load against two references on the same model.

  (a) naive floor   one request at a time: tokenize → generate → decode, in a loop
  (b) raw limit     the same generate on full batches, no HTTP, no queueing
  (c) server        `acgs-serve` as its own process on 127.0.0.1, driven by an aiohttp client
                    with N concurrent connections, bounded by a request count and a time limit

All three use the server's own backend code (ArtifactBackend: same tokenization, max_new_tokens,
EOS stopping) on the same artifact and the same prompts, so the ratios compare serving overhead,
not different work.

    python bench/serving/bench_serving.py                       # builds a tiny artifact first
    python bench/serving/bench_serving.py --artifact DIR --requests 3000 --concurrency 64
"""

from __future__ import annotations

import argparse
import contextlib
import asyncio
import gc
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402  (bench/common.py: machine description, percentiles)
from acgs_contract.constitution import CONSTITUTIONAL_HASH

log = logging.getLogger("bench_serving")
BIN = Path(sys.executable).parent
HASH = CONSTITUTIONAL_HASH


@dataclass
class Measurement:
    name: str
    requests: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    batch_mean: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def _tool(name: str) -> str:
    return str(BIN / name) if (BIN / name).exists() else name


def build_artifact(work: Path, steps: int) -> Path:
    data, out = work / "data.jsonl", work / "train-output"
    subprocess.run([_tool("acgs-data"), "generate", "--type", "all", "--size", "100", "--out", str(data)],
                   check=True, capture_output=True)
    subprocess.run([_tool("acgs-train"), "--data", str(data), "--output", str(out), "--no-dp",
                    "--base-model", "builtin:tiny-llama", "--max-steps", str(steps)], check=True, capture_output=True)
    return out / "artifact"


def workload(n: int) -> list[dict[str, Any]]:
    """n request bodies for /v1/predict: rule-labelled scenarios of all six types, mixed."""
    from acgs_trainer.constitution import load_constitution
    from acgs_trainer.datasets import DATASET_TYPES, generate

    constitution = load_constitution()
    per_type = n // len(DATASET_TYPES) + 1
    by_type = [generate(t, per_type, constitution, seed=7) for t in DATASET_TYPES]
    mixed = [records[i] for i in range(per_type) for records in by_type][:n]
    return [{"type": r["type"], "scenario": r["input"]["scenario"], "constitutional_hash": HASH} for r in mixed]


def measure_naive(backend: Any, prompts: Sequence[str]) -> Measurement:
    latencies = []
    started = time.perf_counter()
    for prompt in prompts:
        t0 = time.perf_counter()
        backend.generate([prompt])
        latencies.append((time.perf_counter() - t0) * 1000)
    return Measurement("naive", len(prompts), time.perf_counter() - started,
                       common.percentile(latencies, 0.5), common.percentile(latencies, 0.99), batch_mean=1.0)


def measure_batched(backend: Any, prompts: Sequence[str], batch_size: int) -> Measurement:
    latencies = []
    started = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        t0 = time.perf_counter()
        backend.generate(prompts[i:i + batch_size])
        latencies.append((time.perf_counter() - t0) * 1000)
    return Measurement("raw_batched", len(prompts), time.perf_counter() - started,
                       common.percentile(latencies, 0.5), common.percentile(latencies, 0.99),
                       batch_mean=float(batch_size))


async def _load(url: str, bodies: Sequence[dict[str, Any]], concurrency: int, duration: float
                ) -> tuple[list[float], int, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    next_index = 0
    deadline = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < len(bodies) and time.perf_counter() < deadline:
                body = bodies[next_index]
                next_index += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(url, json=body) as resp:
                        payload = await resp.json()
                        ok = resp.status == 200 and "decision" in payload
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _batch_mean(metrics_text: str) -> float | None:
    total = count = None
    for line in metrics_text.splitlines():
        if line.startswith("acgs_server_batch_size_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("acgs_server_batch_size_count"):
            count = float(line.rsplit(" ", 1)[1])
    return total / count if total is not None and count else None


def metrics_text(base: str, metrics_port: int) -> str:
    """/metrics from the server's metrics listener, or from its API port (servers before the split)."""
    import urllib.request

    for url in (f"http://127.0.0.1:{metrics_port}/metrics", base + "/metrics"):
        try:
            with urllib.request.urlopen(url) as resp:
                return str(resp.read().decode())
        except OSError:
            continue
    raise RuntimeError(f"no /metrics on port {metrics_port} nor at {base}")


@contextlib.contextmanager
def _serving(artifact: Path, args: argparse.Namespace, work: Path, min_new_tokens: int, wait_ms: float,
             command: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Any:
    """`command` (default `acgs-serve`) started with the benchmark's flags; yields (base URL, metrics port)."""
    port = _free_port()
    log_dir = work / f"interactions-{min_new_tokens}-{wait_ms}"
    cmd = [*(command or [_tool("acgs-serve")]), "--artifact", str(artifact), "--host", "127.0.0.1", "--port", str(port),
           "--max-batch-size", str(args.max_batch_size), "--max-batch-wait-ms", str(wait_ms),
           "--max-new-tokens", str(args.max_new_tokens), "--min-new-tokens", str(min_new_tokens),
           "--interaction-log-dir", str(log_dir),
           "--log-level", "WARNING"]
    if args.server_threads:
        cmd += ["--torch-threads", str(args.server_threads)]
    server_log = (work / "server.log").open("wb")
    # By environment, not flag: an older server under A/B (ab_server.py) ignores it and keeps
    # /metrics on its API port, which metrics_text() falls back to.
    metrics_port = _free_port()
    env = {**(env if env is not None else os.environ), "ACGS_METRICS_PORT": str(metrics_port)}
    proc = subprocess.Popen(cmd, stdout=server_log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if _get_json(base + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(work / 'server.log').read_text()}")
            time.sleep(0.2)
        else:
            raise RuntimeError("server did not become ready")
        yield base, metrics_port
    finally:
        proc.terminate()
        proc.wait(30)
        server_log.close()


def measure_server(artifact: Path, bodies: Sequence[dict[str, Any]], args: argparse.Namespace, work: Path,
                   min_new_tokens: int, command: Sequence[str] | None = None,
                   env: dict[str, str] | None = None) -> tuple[Measurement, dict[str, Any]]:
    """(c): the server under closed-loop HTTP load (saturation)."""
    with _serving(artifact, args, work, min_new_tokens, args.max_batch_wait_ms, command, env) as (base, metrics_port):
        # Warm the HTTP path and the batcher before timing.
        asyncio.run(_load(base + "/v1/predict", bodies[: args.concurrency * 2], args.concurrency, 30))
        latencies, errors, seconds = asyncio.run(
            _load(base + "/v1/predict", bodies, args.concurrency, args.duration))
        scraped = metrics_text(base, metrics_port)
        stats = _get_json(base + "/v1/interactions/stats")[1]
        measurement = Measurement("server", len(latencies), seconds, common.percentile(latencies, 0.5),
                                  common.percentile(latencies, 0.99), errors, _batch_mean(scraped))
        return measurement, {"interactions_logged": stats.get("total"), "interactions_dropped": stats.get("dropped")}


async def _open_loop(url: str, bodies: Sequence[dict[str, Any]], rate: float, seconds: float) -> dict[str, Any]:
    """Fixed arrival rate: request i is sent at t0 + i/rate whether or not earlier ones finished;
    latency from its scheduled send time (so a lagging client or server queue is counted)."""
    import aiohttp

    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i: int, due: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                async with session.post(url, json=bodies[i % len(bodies)]) as resp:
                    payload = await resp.json()
                    ok = resp.status == 200 and "decision" in payload
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - due) * 1000)
            else:
                errors += 1

        t0 = time.perf_counter() + 0.2
        await asyncio.gather(*(one(i, t0 + i / rate) for i in range(n)))
        elapsed = time.perf_counter() - t0
    return {"rate": rate, "requests": n, "achieved": len(latencies) / elapsed, "errors": errors,
            "latencies": latencies}


def measure_open_loop(artifact: Path, bodies: Sequence[dict[str, Any]], args: argparse.Namespace, work: Path,
                      waits: Sequence[float]) -> dict[float, list[dict[str, Any]]]:
    """(d): p50/p99 at each fixed arrival rate for one server per `--max-batch-wait-ms` value, all
    started together and measured interleaved per rate (A B B A: two halves each, pooled), so the
    shared machine's drift hits each alike."""
    with contextlib.ExitStack() as stack:
        servers = {wait: stack.enter_context(_serving(artifact, args, work, 0, wait)) for wait in waits}
        for base, _ in servers.values():
            asyncio.run(_load(base + "/v1/predict", bodies[:200], 16, 30))  # warm-up
        out: dict[float, list[dict[str, Any]]] = {wait: [] for wait in waits}
        for rate in args.open_rates:
            halves: dict[float, list[dict[str, Any]]] = {wait: [] for wait in waits}
            for wait in [*waits, *reversed(waits)]:
                base, metrics_port = servers[wait]
                before = metrics_text(base, metrics_port)
                result = asyncio.run(_open_loop(base + "/v1/predict", bodies, rate, args.open_seconds / 2))
                result["batch_mean"] = _batch_mean_between(before, metrics_text(base, metrics_port))
                halves[wait].append(result)
            for wait, parts in halves.items():
                lat = [x for p in parts for x in p["latencies"]]
                batches = [p["batch_mean"] for p in parts if p["batch_mean"]]
                out[wait].append({"rate": rate, "requests": sum(p["requests"] for p in parts),
                                  "achieved": min(p["achieved"] for p in parts),
                                  "errors": sum(p["errors"] for p in parts),
                                  "p50_ms": common.percentile(lat, 0.5), "p99_ms": common.percentile(lat, 0.99),
                                  "batch_mean": sum(batches) / len(batches) if batches else None})
        return out


def _batch_mean_between(before: str, after: str) -> float | None:
    def sums(text: str) -> tuple[float, float]:
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith("acgs_server_batch_size_sum"):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith("acgs_server_batch_size_count"):
                count = float(line.rsplit(" ", 1)[1])
        return total, count

    (t0, c0), (t1, c1) = sums(before), sums(after)
    return (t1 - t0) / (c1 - c0) if c1 > c0 else None


def machine() -> dict[str, Any]:
    import torch

    return {"description": common.machine(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def render_section(title: str, results: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    a, b, c = (results[k] for k in ("naive", "raw_batched", "server"))
    c_over_a, c_over_b = c["rps"] / a["rps"], c["rps"] / b["rps"]

    def row(x: dict[str, Any]) -> str:
        p50 = f"{x['p50_ms']:.1f}" if x.get("p50_ms") is not None else "–"
        p99 = f"{x['p99_ms']:.1f}" if x.get("p99_ms") is not None else "–"
        batch = f"{x['batch_mean']:.1f}" if x.get("batch_mean") else "–"
        return (f"| {x['name']} | {x['requests']} | {x['seconds']:.2f} | {x['rps']:.1f} | {p50} | {p99} | {batch} "
                f"| {x['errors']} |")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"## {title}",
        "",
        "| run | requests | seconds | req/s | p50 ms | p99 ms | mean batch | errors |",
        "|---|---|---|---|---|---|---|---|",
        row(a), row(b), row(c),
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| server ≥ 5× naive loop | {c_over_a:.2f}× (raw batched itself: {b['rps'] / a['rps']:.2f}×) "
        f"| {verdict(c_over_a >= 5)} |",
        f"| server ≥ 0.85× raw batched generate | {c_over_b:.2f}× | {verdict(c_over_b >= 0.85)} |",
        f"| server ≥ 100 req/s | {c['rps']:.1f} req/s (p99 {c['p99_ms']:.1f} ms) | {verdict(c['rps'] >= 100)} |",
        "",
        f"(b) measured before and after (c) and pooled (shared machine): "
        f"{results['extra'].get('raw_batched_rps_before_after')} req/s. Interaction records written: "
        f"{results['extra'].get('interactions_logged')}, dropped: {results['extra'].get('interactions_dropped')}.",
        "",
        *_render_open_loop(results["extra"].get("open_loop"), b["rps"]),
    ]


def _render_open_loop(runs: dict[float, list[dict[str, Any]]] | None, raw_rps: float) -> list[str]:
    if not runs:
        return []
    lines = ["### (d) latency under load: open loop (fixed arrival rate)", "",
             "Request i is sent at t0 + i/rate whatever happened to earlier ones; latency from its "
             "scheduled send time, client-measured (the client shares the 2 cores). One server per "
             "`--max-batch-wait-ms`: 5 ms is the batcher as it was (an idle model waited up to 5 ms for "
             "batch-mates), 0 the fix (an idle model takes what is queued at once; while it is busy, "
             "batches still fill). Both servers run side by side and are measured interleaved per rate "
             "(A B B A, halves pooled).", "",
             "| max_batch_wait_ms | rate req/s | achieved req/s | p50 ms | p99 ms | mean batch | errors |",
             "|---|---|---|---|---|---|---|"]
    for wait, results in runs.items():
        for r in results:
            batch = f"{r['batch_mean']:.1f}" if r.get("batch_mean") else "–"
            lines.append(f"| {wait:g} | {r['rate']:g} | {r['achieved']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                         f"| {batch} | {r['errors']} |")
    at_200 = {wait: next((r for r in results if r["rate"] == 200), None) for wait, results in runs.items()}
    lines.append("")
    for wait, r in at_200.items():
        if r is not None:
            ok = r["p99_ms"] <= 5 and r["errors"] == 0
            lines.append(f"- p99 ≤ 5 ms at 200 req/s, max_batch_wait_ms={wait:g}: {r['p99_ms']:.1f} ms, "
                         f"{'met' if ok else 'NOT met'}.")
    lines += [f"- Saturation (closed loop above, server) against the raw batched limit (b), {raw_rps:.0f} req/s: "
              "see the target table.", ""]
    return lines


def render(all_results: dict[str, Any]) -> str:
    m, cfg = all_results["machine"], all_results["config"]
    lines = [
        "# Serving benchmark (bench/serving/bench_serving.py)",
        "",
        f"Machine: {m['description']}, torch {m['torch']}"
        + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU (CPU run)") + ". The machine is shared "
        "with other engineers' builds and tests, so absolute numbers move by up to 2× between runs; "
        "each workload measures its three runs back to back.",
        f"Model: {cfg['model']} ({cfg['parameters']:,} parameters, LoRA merged), trained by `acgs-train` "
        f"({cfg['train_steps']} steps), device {cfg['device']}; greedy, max_new_tokens={cfg['max_new_tokens']}; "
        f"prompts: {cfg['prompts']} rule-labelled scenarios mixed over the six dataset types.",
        f"Server: `acgs-serve` in its own process (model in a child process), max_batch_size="
        f"{cfg['max_batch_size']}, max_batch_wait_ms={cfg['max_batch_wait_ms']}, torch threads="
        f"{cfg['server_threads'] or 'default (all cores)'}, interaction logging on. Load: "
        f"{cfg['concurrency']} concurrent aiohttp connections on 127.0.0.1 from the benchmark process "
        f"(same 2 cores), at most {cfg['requests']} requests / {cfg['duration']} s after a warm-up. "
        f"References (a)/(b) in the benchmark process with the server's own backend code, torch "
        f"threads={cfg['ref_threads']}.",
        "p50/p99 for (a) and (b) are per generate call (one request, or one batch); for (c) per HTTP "
        "request, client-measured.",
        "",
    ]
    for key, title in (("eos", "Workload 1: as served (stops at EOS; the trained model answers in ~3 tokens)"),
                       ("fixed", f"Workload 2: fixed {cfg['max_new_tokens']} new tokens per request "
                                 "(EOS ignored; the shape of the issue's reference figures)")):
        if key in all_results:
            lines += render_section(title, all_results[key], cfg)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifact", type=Path, help="trainer artifact dir (default: build a tiny one)")
    p.add_argument("--train-steps", type=int, default=150, help="steps for the artifact built when none given")
    p.add_argument("--requests", type=int, default=6000, help="HTTP requests at most")
    p.add_argument("--duration", type=float, default=40.0, help="seconds of HTTP load at most")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--naive-requests", type=int, default=300)
    p.add_argument("--raw-requests", type=int, default=1920)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-batch-wait-ms", type=float, default=0.0,
                   help="the server's (0: an idle model takes what is queued at once)")
    p.add_argument("--open-rates", type=lambda v: [float(x) for x in v.split(",")], default=[50.0, 200.0, 800.0],
                   help="(d) fixed arrival rates, req/s, comma-separated")
    p.add_argument("--open-seconds", type=float, default=8.0, help="(d) seconds per rate and server")
    p.add_argument("--workloads", default="eos,fixed", help="eos, fixed or both (comma-separated)")
    p.add_argument("--open-waits", type=lambda v: [float(x) for x in v.split(",")], default=[5.0, 0.0],
                   help="(d) --max-batch-wait-ms values to compare, one server each (5: before the fix)")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--server-threads", type=int, default=1,
                   help="torch threads in the server's model process "
                        "(1: the HTTP process and the client need the other core)")
    p.add_argument("--ref-threads", type=int, default=None,
                   help="torch threads for (a)/(b) (default: the server's, so all three do the same work)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "RESULTS-serving.md")
    p.add_argument("--json", type=Path, help="also write raw results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server_image"))
    from acgs_server.backend import ArtifactBackend, default_torch_threads

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        artifact = args.artifact or build_artifact(work, args.train_steps)
        bodies = workload(max(args.requests, args.naive_requests, args.raw_requests))
        ref_threads = args.ref_threads or args.server_threads or default_torch_threads()
        all_results: dict[str, Any] = {"machine": machine()}
        for key, min_new_tokens in (("eos", 0), ("fixed", args.max_new_tokens)):
            if key not in args.workloads.split(","):
                continue
            log.info("workload %s (min_new_tokens=%d)", key, min_new_tokens)
            backend = ArtifactBackend(artifact, None, HASH, args.max_new_tokens, device=args.device,
                                      torch_threads=ref_threads, min_new_tokens=min_new_tokens)
            card = backend.load()
            prompts = [backend.format_prompt({"type": b["type"], "scenario": b["scenario"]}) for b in bodies]
            parameters = sum(p.numel() for p in backend._model.parameters())  # noqa: SLF001 - report only
            naive = measure_naive(backend, prompts[: args.naive_requests])
            raw = measure_batched(backend, prompts[: args.raw_requests], args.max_batch_size)
            log.info("(a) naive %.1f req/s, (b) raw batched %.1f req/s", naive.rps, raw.rps)
            server, extra = measure_server(artifact, bodies[: args.requests], args, work, min_new_tokens)
            log.info("(c) %.1f req/s, p50 %.1f ms, p99 %.1f ms, errors %d", server.rps, server.p50_ms or 0,
                     server.p99_ms or 0, server.errors)
            # The machine is shared: measure the limit again after (c) and pool the two.
            raw_after = measure_batched(backend, prompts[: args.raw_requests], args.max_batch_size)
            extra["raw_batched_rps_before_after"] = [round(raw.rps, 1), round(raw_after.rps, 1)]
            if key == "eos" and args.open_rates:
                extra["open_loop"] = measure_open_loop(artifact, bodies, args, work, args.open_waits)
            raw.requests += raw_after.requests
            raw.seconds += raw_after.seconds
            raw.p99_ms = max(raw.p99_ms or 0, raw_after.p99_ms or 0)
            all_results[key] = {**{m.name: {**asdict(m), "rps": m.rps} for m in (naive, raw, server)}, "extra": extra}
            del backend
            gc.collect()
    all_results["config"] = {
        "model": card.base_model, "parameters": parameters, "device": args.device,
        "train_steps": "given artifact" if args.artifact else args.train_steps,
        "max_new_tokens": args.max_new_tokens, "prompts": len(bodies),
        "max_batch_size": args.max_batch_size, "max_batch_wait_ms": args.max_batch_wait_ms,
        "server_threads": args.server_threads, "ref_threads": ref_threads,
        "concurrency": args.concurrency, "requests": args.requests, "duration": args.duration,
    }
    results = all_results
    args.out.write_text(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    sys.stdout.write(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> str:
    """For `make bench` (bench/run.py): the same measurements, shorter load, as one markdown section."""
    fd, name = tempfile.mkstemp(suffix=".md")
    os.close(fd)
    out = Path(name)
    try:
        if main(["--out", str(out), "--duration", "20", "--requests", "3000", "--open-seconds", "6"]) != 0:
            raise RuntimeError("serving benchmark failed")
        return out.read_text().replace("# Serving benchmark", "## Serving benchmark", 1)
    finally:
        out.unlink(missing_ok=True)
