"""Reconcile bursts and the operator's memory, on the real local control plane.

Objects are created "at once" (every create in flight together, up to ACGS_BENCH_CONCURRENCY) over
HTTPS straight to the apiserver; watches on the children record when each child first appears.

- Subject: the objects go into a namespace the operator watches; create-to-child latency runs from
  the moment an object's create request is sent to the moment its last child is seen.
- Floor: the same objects go into a namespace the operator does not watch (it is started with
  ACGS_NAMESPACES naming the subject namespaces only); their create round trip (admission webhook
  included, as for the subject) is the least any reconciler could add to.
Floor and subject bursts alternate, so drift on the shared machine hits both alike.

Memory: the operator's RSS (from /proc) idle before the first burst and after each TrainingJob
round has settled (every child seen and the operator's CPU quiet), so after 500 and 1,000
TrainingJobs with their Jobs, ConfigMaps, Secrets and NetworkPolicies.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / "bench"))

import install  # noqa: E402
import localcluster  # noqa: E402
from common import percentile, verdict  # noqa: E402
from acgs_contract.constitution import CONSTITUTIONAL_HASH  # noqa: E402
from acgs_operator.api.deployment import Color  # noqa: E402
from acgs_operator.builders import deployment as dep_build  # noqa: E402
from acgs_operator.builders import trainingjob as tj_build  # noqa: E402

TRAINING_JOBS = int(os.environ.get("ACGS_BENCH_TRAININGJOBS", "500"))
DEPLOYMENTS = int(os.environ.get("ACGS_BENCH_DEPLOYMENTS", "100"))
ROUNDS = int(os.environ.get("ACGS_BENCH_TJ_ROUNDS", "2"))  # TrainingJob rounds: memory at 500 and 1,000
CONCURRENCY = int(os.environ.get("ACGS_BENCH_CONCURRENCY", "100"))
# A py-spy profile of the operator during the first TrainingJob round (floor and subject), as
# collapsed stacks, when set: ACGS_BENCH_PYSPY=/tmp/operator.folded (py-spy must be on PATH or in .venv).
PYSPY_OUT = os.environ.get("ACGS_BENCH_PYSPY")
CHILD_TIMEOUT = float(os.environ.get("ACGS_BENCH_CHILD_TIMEOUT", "300"))
GROUP_PATH = "/apis/acgs.io/v1alpha1"
MODEL = "bench-model"


def training_job(name: str) -> dict[str, Any]:
    return {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"constitutionalHash": CONSTITUTIONAL_HASH, "modelName": "constitutional-ai",
                     "baseModel": "builtin:tiny-llama",
                     "data": {"generate": {"type": "constitutional_ai", "size": 100}},
                     "privacy": {"targetEpsilon": 8}, "resources": {"cpu": "1", "memory": "1Gi", "gpus": 0},
                     "output": {"pvc": "artifacts"}}}


def model_version() -> dict[str, Any]:
    return {"apiVersion": "acgs.io/v1alpha1", "kind": "ModelVersion", "metadata": {"name": f"{MODEL}-1-0-0"},
            "spec": {"constitutionalHash": CONSTITUTIONAL_HASH, "modelName": MODEL, "version": "1.0.0",
                     "baseModel": "builtin:tiny-llama", "stage": "production",
                     "artifact": {"uri": f"pvc://artifacts/{MODEL}/1.0.0", "digest": "sha256:" + "0" * 64},
                     "metrics": {"accuracy": 0.97, "complianceScore": 0.98}}}


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "acgs.io/v1alpha1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"constitutionalHash": CONSTITUTIONAL_HASH,
                     "model": {"selector": {"modelName": MODEL, "stage": "production"}}, "replicas": 1,
                     "strategy": {"blueGreen": {"autoPromotionEnabled": True}},
                     # no gate: the unverified version's metrics do not count (nothing verifies it here)
                     "promotion": {"minComplianceScore": 0},
                     "artifactPvc": "artifacts"}}


def tj_children(name: str) -> set[tuple[str, str]]:
    return {("Job", tj_build.job_name(name))}


def deployment_children(name: str) -> set[tuple[str, str]]:
    # The first rollout plans blue (it becomes the active color once its checks pass; kwok pods
    # serve no HTTP, so here it stays the preview) and both Services.
    return {("Service", dep_build.active_service_name(name)), ("Service", dep_build.preview_service_name(name)),
            ("Deployment", dep_build.deployment_name(name, Color.BLUE))}


@dataclass
class Api:
    session: aiohttp.ClientSession
    base: str = field(default_factory=lambda: f"https://127.0.0.1:{localcluster.API_PORT}")

    @classmethod
    def connect(cls) -> Api:
        ctx = ssl.create_default_context(cafile=str(localcluster.PKI / "ca.crt"))
        ctx.load_cert_chain(str(localcluster.PKI / "admin.crt"), str(localcluster.PKI / "admin.key"))
        connector = aiohttp.TCPConnector(ssl=ctx, limit=CONCURRENCY + 8)
        return cls(aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)))

    async def post(self, path: str, body: dict[str, Any]) -> None:
        async with self.session.post(self.base + path, json=body) as r:
            if r.status >= 300:
                raise RuntimeError(f"POST {path} {body['metadata']['name']}: {r.status} {await r.text()}")
            await r.read()

    async def list_version(self, path: str) -> str:
        async with self.session.get(self.base + path, params={"limit": "1"}) as r:
            r.raise_for_status()
            return (await r.json())["metadata"]["resourceVersion"]


async def watch_children(api: Api, namespace: str, kinds: dict[str, str], seen: dict[tuple[str, str], float],
                         started: asyncio.Event, counter: list[asyncio.Event]) -> None:
    """Record when each (kind, name) in `namespace` is first seen; `kinds`: kind -> collection path."""
    async def one(kind: str, path: str, ready: asyncio.Event) -> None:
        url = path.format(ns=namespace)
        version = await api.list_version(url)
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "false"}
        async with api.session.get(api.base + url, params=params) as r:
            ready.set()
            async for line in r.content:
                now = time.perf_counter()
                event = json.loads(line)
                if event["type"] == "ADDED":
                    seen.setdefault((kind, event["object"]["metadata"]["name"]), now)
                    counter[0].set()

    readies = [asyncio.Event() for _ in kinds]
    tasks = [asyncio.create_task(one(k, p, e)) for (k, p), e in zip(kinds.items(), readies)]
    for e in readies:
        await e.wait()
    started.set()
    await asyncio.gather(*tasks)


@dataclass
class Burst:
    n: int
    create_s: list[float]  # create round trip per object
    child_s: list[float]  # create sent -> last child seen, per object (subject only)
    span_s: float  # first create sent -> last child seen (subject) or last create answered (floor)
    missing: int = 0


async def burst(api: Api, namespace: str, plural: str, bodies: list[dict[str, Any]],
                children: Any = None, kinds: dict[str, str] | None = None) -> Burst:
    seen: dict[tuple[str, str], float] = {}
    watcher = None
    if children:
        started, signal = asyncio.Event(), [asyncio.Event()]
        watcher = asyncio.create_task(watch_children(api, namespace, kinds or {}, seen, started, signal))
        await started.wait()
    gate = asyncio.Semaphore(CONCURRENCY)
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}

    async def create(body: dict[str, Any]) -> None:
        async with gate:
            name = body["metadata"]["name"]
            sent[name] = time.perf_counter()
            await api.post(f"{GROUP_PATH}/namespaces/{namespace}/{plural}", body)
            answered[name] = time.perf_counter()

    t0 = time.perf_counter()
    await asyncio.gather(*(create(b) for b in bodies))
    names = [b["metadata"]["name"] for b in bodies]
    create_s = [answered[n] - sent[n] for n in names]
    if watcher is None:
        return Burst(len(bodies), create_s, [], max(answered.values()) - t0)
    wanted = {n: children(n) for n in names}
    deadline = time.perf_counter() + CHILD_TIMEOUT
    while time.perf_counter() < deadline and not all(c <= seen.keys() for c in wanted.values()):
        signal[0].clear()
        try:
            await asyncio.wait_for(signal[0].wait(), timeout=1.0)
        except asyncio.TimeoutError:
            pass
    watcher.cancel()
    done = {n: max(seen[c] for c in cs) for n, cs in wanted.items() if cs <= seen.keys()}
    child_s = [done[n] - sent[n] for n in names if n in done]
    return Burst(len(bodies), create_s, child_s, (max(done.values()) - t0) if done else float("nan"),
                 missing=len(names) - len(done))


def _profile(pid: int, out: str | None = None) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` until SIGINT, collapsed stacks into `out` (default ACGS_BENCH_PYSPY)."""
    exe = shutil.which("py-spy") or str(ROOT / ".venv/bin/py-spy")
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                             "--output", str(out or PYSPY_OUT), "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(operator_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the operator and each control-plane process."""
    out = {"operator": cpu_seconds(operator_pid)}
    for name in localcluster.COMPONENTS:
        component = localcluster.pid_of(name)
        if component:
            out[name] = cpu_seconds(component)
    return out


def settle(pid: int, quiet_share: float = 0.05, window: float = 3.0, limit: float = 120.0) -> None:
    """Wait until the operator uses under `quiet_share` of a core over `window` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - before) / window < quiet_share:
            return


def create_namespace(name: str) -> None:
    localcluster.kubectl("create", "namespace", name)


def start_operator(namespaces: list[str]) -> int:
    os.environ["ACGS_NAMESPACES"] = ",".join(namespaces)
    # kwok pods never serve the model, so no ModelVersion here gets verified by the operator's Job;
    # the Deployment burst measures the first reconcile, which needs a usable version.
    os.environ["ACGS_REQUIRE_VERIFIED_MODEL_VERSIONS"] = "false"
    try:
        install.start_operator(restart=True)
    finally:
        del os.environ["ACGS_NAMESPACES"], os.environ["ACGS_REQUIRE_VERIFIED_MODEL_VERSIONS"]
    pid = localcluster.pid_of("operator") if hasattr(localcluster, "pid_of") else None
    pid = pid or int((install.PIDS / "operator.pid").read_text())
    return pid


def stats(b: Burst) -> dict[str, float]:
    values = b.child_s or b.create_s
    return {"p50": percentile(values, 0.5) * 1e3, "p99": percentile(values, 0.99) * 1e3}


async def scenario() -> dict[str, Any]:
    tag = uuid.uuid4().hex[:5]
    tj_ns = [f"bench-tj{r}-{tag}" for r in range(ROUNDS)]
    tj_floor = [f"bench-tjfloor{r}-{tag}" for r in range(ROUNDS)]
    dep_ns, dep_floor = f"bench-dep-{tag}", f"bench-depfloor-{tag}"
    everything = tj_ns + tj_floor + [dep_ns, dep_floor]
    for ns in everything:
        create_namespace(ns)
    pid = start_operator(tj_ns + [dep_ns])
    out: dict[str, Any] = {"tj": [], "dep": None, "rss": [], "cpu": [], "namespaces": everything}
    api = Api.connect()
    try:
        settle(pid)
        out["rss"].append((0, rss_mib(pid)))
        jobs = {"Job": "/apis/batch/v1/namespaces/{ns}/jobs"}
        # Warm-up, unmeasured: the apiserver's first writes of a kind and the first reconciles.
        await burst(api, tj_floor[0], "trainingjobs", [training_job(f"warm-{i}") for i in range(20)])
        await burst(api, tj_ns[0], "trainingjobs", [training_job(f"warm-{i}") for i in range(20)],
                    tj_children, jobs)
        settle(pid)
        out["rss"].append((20, rss_mib(pid)))
        for r in range(ROUNDS):
            bodies = [training_job(f"tj-{i}") for i in range(TRAINING_JOBS)]
            profiler = _profile(pid) if r == 0 and PYSPY_OUT else None
            floor = await burst(api, tj_floor[r], "trainingjobs", bodies)
            cpu_before = cpu_by_process(pid)
            subject = await burst(api, tj_ns[r], "trainingjobs", bodies, tj_children, jobs)
            out["cpu"].append({k: cpu_by_process(pid)[k] - v for k, v in cpu_before.items()} | {"wall": subject.span_s})
            if profiler:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
            out["tj"].append((floor, subject))
            settle(pid)
            out["rss"].append((20 + (r + 1) * TRAINING_JOBS, rss_mib(pid)))
        for ns in (dep_ns, dep_floor):
            await api.post(f"{GROUP_PATH}/namespaces/{ns}/modelversions", model_version())
        time.sleep(2)
        settle(pid)
        bodies = [deployment(f"dep-{i}") for i in range(DEPLOYMENTS)]
        floor = await burst(api, dep_floor, "deployments", bodies)
        subject = await burst(api, dep_ns, "deployments", bodies, deployment_children,
                              {"Service": "/api/v1/namespaces/{ns}/services",
                               "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments"})
        out["dep"] = (floor, subject)
        out["rss_after_deployments"] = rss_mib(pid)
    finally:
        await api.session.close()
    return out


def _burst_rows(what: str, floor: Burst, subject: Burst) -> list[str]:
    f, s = stats(floor), stats(subject)
    rate = (subject.n - subject.missing) / subject.span_s
    p99_ratio = s["p99"] / f["p99"]
    missing = f" — {subject.missing} never got their children" if subject.missing else ""
    return [
        f"| {what}: create round trip, unwatched namespace (floor) | {f['p50']:.0f} ms | "
        f"{f['p99']:.0f} ms | "
        f"{floor.n / floor.span_s:.0f} creates/s | | |",
        f"| {what}: create → children seen (subject){missing}"
        f" | {s['p50']:.0f} ms | {s['p99']:.0f} ms | {rate:.0f} reconciles/s | "
        f"p99 ≤ 250 ms: {verdict(s['p99'], 250, False)}; ≤ 3× floor ({p99_ratio:.1f}×): "
        f"{verdict(p99_ratio, 3.0, False)}; ≥ 100/s: {verdict(rate, 100, True)} | |",
    ]


def run() -> str:
    localcluster.up()
    install.install_crds()
    install.install_webhook()
    started = time.monotonic()
    try:
        out = asyncio.run(scenario())
    finally:
        localcluster.stop_pidfile(install.PIDS / "operator.pid")  # the next benchmark starts its own
    for ns in out["namespaces"]:
        localcluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    lines = ["## Reconcile bursts and operator memory (bench/burst.py)", "",
             f"Local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes) and the "
             f"operator as a process, on this machine; creates sent over HTTPS, up to {CONCURRENCY} in flight. "
             "Floor: the same objects created in a namespace the operator does not watch (admission webhook "
             "included on both sides). Floor and subject bursts alternate in one run; the machine is shared "
             "with other engineers' jobs, so absolute figures move between runs. Children are not run "
             "(pods stay Pending: no PVC).", "",
             "| burst | p50 | p99 | throughput | targets | |", "|---|---|---|---|---|---|"]
    for r, (floor, subject) in enumerate(out["tj"]):
        lines += _burst_rows(f"{TRAINING_JOBS} TrainingJobs, round {r + 1} (child: Job)", floor, subject)
    lines += _burst_rows(f"{DEPLOYMENTS} Deployments (children: both Services + blue apps/v1 Deployment)",
                         *out["dep"])
    lines += ["", "Where the CPU went during each TrainingJob subject burst (CPU seconds from /proc; the "
              "bench client's own not counted):", "",
              "| round | wall s | " + " | ".join(k for k in out["cpu"][0] if k != "wall") + " |",
              "|---|---|" + "---|" * (len(out["cpu"][0]) - 1)]
    for r, cpu in enumerate(out["cpu"]):
        lines.append(f"| {r + 1} | {cpu['wall']:.0f} | " + " | ".join(f"{v:.1f}" for k, v in cpu.items() if k != "wall")
                     + " |")
    rss = out["rss"]
    rounds = rss[2:]
    slope = ((rounds[-1][1] - rounds[0][1]) / (rounds[-1][0] - rounds[0][0]) * 1000
             if len(rounds) > 1 else (rounds[-1][1] - rss[1][1]) / (rounds[-1][0] - rss[1][0]) * 1000)
    top_n, top = rss[-1]
    lines += ["", "Operator RSS (VmRSS, each after the operator's CPU went quiet):", "",
              "| TrainingJobs in watched namespaces (each with its Job, ConfigMap, Secret, NetworkPolicy) | RSS |",
              "|---|---|"]
    lines += [f"| {n:,}{' (idle, just started)' if n == 0 else ' (warm-up)' if n == 20 else ''} | {m:.0f} MiB |"
              for n, m in rss]
    lines += [f"| {top_n:,} + {DEPLOYMENTS} Deployments | {out['rss_after_deployments']:.0f} MiB |", "",
              f"Growth: {slope:.0f} MiB per 1,000 TrainingJobs (slope between the measured rounds). "
              + (f"Target ≤ 120 MiB at 1,000: {top:.0f} MiB at {top_n:,}, {verdict(top, 120, False)}."
                 if top_n >= 1000 else f"(1,000 not reached with these sizes: {top:.0f} MiB at {top_n:,}.)"),
              "", f"Section wall time {time.monotonic() - started:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
