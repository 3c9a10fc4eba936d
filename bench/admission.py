"""Admission webhook cost, for two servers of the same checks (handlers/admission.check), both run
by one operator process: its webhook process (servers/webhook.py, what the manifests run: "process")
and, as the baseline, kopf's webhook inside the operator's event loop (how it was served before,
kept behind ACGS_IN_LOOP_WEBHOOK_PORT for this benchmark only: "kopf").

1. Latency of the webhook itself, p50/p99, at a fixed request rate (open loop: requests are sent
   on schedule whether or not earlier ones finished), straight over TLS; the two servers alternate.
2. A webhooked create through the apiserver as a ratio to a webhook-less create of the same object,
   all measured in this run, interleaved: one namespace per server (namespaceSelectors pick the
   webhook), one with none.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import sys
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / "bench"))

import install  # noqa: E402
import localcluster  # noqa: E402
from common import median, percentile, verdict  # noqa: E402
from acgs_contract.constitution import CONSTITUTIONAL_HASH  # noqa: E402

HASH = CONSTITUTIONAL_HASH
SPEC = {"constitutionalHash": HASH, "modelName": "constitutional-ai",
        "data": {"generate": {"type": "constitutional_ai", "size": 100}}, "privacy": {"targetEpsilon": 4}}
HOOK_LABEL = "acgs.io/bench-webhook"  # kopf | process; absent: no webhook
IN_LOOP_PORT = int(os.environ.get("ACGS_BENCH_IN_LOOP_WEBHOOK_PORT", "9453"))
SERVERS = ("kopf", "process")
DIRECT_SECONDS = float(os.environ.get("ACGS_BENCH_WEBHOOK_SECONDS", "10"))
# py-spy profiles (collapsed stacks) of the operator during the first kopf half of the direct runs,
# when set: ACGS_BENCH_PYSPY_WEBHOOK=/tmp/webhook.folded (idle) and /tmp/webhook.folded.under-load
PYSPY_OUT = os.environ.get("ACGS_BENCH_PYSPY_WEBHOOK")
SETTLE_SECONDS = float(os.environ.get("ACGS_BENCH_WEBHOOK_SETTLE_SECONDS", "20"))
LOAD_OBJECTS = int(os.environ.get("ACGS_BENCH_WEBHOOK_LOAD_OBJECTS", "300"))


def review(i: int) -> dict:
    obj = {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob",
           "metadata": {"name": f"bench-{i}", "namespace": "bench"}, "spec": SPEC}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": "acgs.io", "version": "v1alpha1", "kind": "TrainingJob"},
        "resource": {"group": "acgs.io", "version": "v1alpha1", "resource": "trainingjobs"},
        "requestKind": {"group": "acgs.io", "version": "v1alpha1", "kind": "TrainingJob"},
        "requestResource": {"group": "acgs.io", "version": "v1alpha1", "resource": "trainingjobs"},
        "name": f"bench-{i}", "namespace": "bench", "operation": "CREATE",
        "userInfo": {"username": "bench"}, "object": obj, "oldObject": None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}}


async def direct(rate: float, seconds: float, port: int) -> dict:
    ctx = ssl.create_default_context(cafile=str(install.WEBHOOK_DIR / "ca.crt"))
    url = f"https://127.0.0.1:{port}/validate-trainingjobs"
    bodies = [json.dumps(review(i)).encode() for i in range(int(rate * seconds))]
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(ssl=ctx, limit=64)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as s:
        for body in bodies[:50]:  # warm up connections and code paths
            async with s.post(url, data=body) as r:
                await r.read()

        async def one(body: bytes, due: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            start = time.perf_counter()
            async with s.post(url, data=body) as r:
                payload = await r.json()
            latencies.append(time.perf_counter() - start)
            if not payload["response"]["allowed"]:
                errors += 1

        t0 = time.perf_counter() + 0.1
        await asyncio.gather(*(one(b, t0 + i / rate) for i, b in enumerate(bodies)))
        elapsed = time.perf_counter() - t0
    return {"requests": len(bodies), "achieved_rps": len(bodies) / elapsed, "errors": errors, "latencies": latencies}


def direct_both(rate: float, seconds: float, profile: str | None = None) -> dict[str, dict]:
    """The two servers alternately, two halves each, pooled; `profile`: py-spy the operator during
    kopf's first half, collapsed stacks into this file."""
    runs: dict[str, list[dict]] = {"kopf": [], "process": []}
    for order in (SERVERS, SERVERS[::-1]):
        for name in order:
            port = IN_LOOP_PORT if name == "kopf" else install.WEBHOOK_PORT
            profiler = None
            if profile and name == "kopf" and not runs["kopf"]:
                import burst

                profiler = burst._profile(int((install.PIDS / "operator.pid").read_text()), profile)
            runs[name].append(asyncio.run(direct(rate, seconds / 2, port)))
            if profiler:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
    out = {}
    for name, parts in runs.items():
        lat = [x for p in parts for x in p["latencies"]]
        out[name] = {"requests": len(lat), "errors": sum(p["errors"] for p in parts),
                     "achieved_rps": min(p["achieved_rps"] for p in parts),
                     "p50_ms": percentile(lat, 0.5) * 1e3, "p99_ms": percentile(lat, 0.99) * 1e3}
    return out


def under_reconcile_load(rate: float, seconds: float, objects: int) -> dict[str, dict]:
    """Direct webhook latency, the two servers alternating, while the operator reconciles a burst of
    `objects` TrainingJobs (created at once from another thread): the webhook's neighbours busy."""
    import threading

    import burst

    ns = f"bench-load-{uuid.uuid4().hex[:6]}"
    localcluster.kubectl("create", "namespace", ns)

    async def create_all() -> None:
        api = burst.Api.connect()
        try:
            await burst.burst(api, ns, "trainingjobs", [burst.training_job(f"load-{i}") for i in range(objects)])
        finally:
            await api.session.close()

    creator = threading.Thread(target=lambda: asyncio.run(create_all()), daemon=True)
    creator.start()
    time.sleep(1.0)  # the creates are landing; the reconciles follow for tens of seconds
    try:
        return direct_both(rate, seconds, PYSPY_OUT and PYSPY_OUT + ".under-load")
    finally:
        creator.join(timeout=120)
        localcluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def wait_serving(port: int, seconds: float = 30) -> None:
    """The in-loop webhook answers an AdmissionReview (kopf starts its server after the Lease)."""
    ctx = ssl.create_default_context(cafile=str(install.WEBHOOK_DIR / "ca.crt"))

    async def up() -> bool:
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
                async with s.post(f"https://127.0.0.1:{port}/validate-trainingjobs",
                                  data=json.dumps(review(0))) as r:
                    return r.status == 200
        except aiohttp.ClientError:
            return False

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if asyncio.run(up()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"no webhook answering on port {port} after {seconds:.0f} s")


def creates(namespace: str, n: int) -> list[float]:
    from kubernetes import client, config

    config.load_kube_config(str(localcluster.KUBECONFIG))
    api = client.CustomObjectsApi()
    out = []
    for i in range(n):
        body = {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": f"b-{i}"}, "spec": SPEC}
        start = time.perf_counter()
        api.create_namespaced_custom_object("acgs.io", "v1alpha1", namespace, "trainingjobs", body, dry_run="All")
        out.append(time.perf_counter() - start)
    return out


def _scrape(url: str, tls: bool) -> str:
    import urllib.request

    ctx = None
    if tls:
        ctx = ssl.create_default_context(cafile=str(localcluster.PKI / "ca.crt"))
        ctx.load_cert_chain(str(localcluster.PKI / "admin.crt"), str(localcluster.PKI / "admin.key"))
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        return r.read().decode()


def _sum_count(text: str, metric: str, **labels: str) -> tuple[float, float]:
    """Sum of `metric`_sum and _count over the series whose labels include `labels`."""
    total = count = 0.0
    for line in text.splitlines():
        if not line.startswith(metric + "_sum") and not line.startswith(metric + "_count"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith(metric + "_sum"):
                total += value
            else:
                count += value
    return total, count


def time_split() -> dict[str, str]:
    """Scrapes whose difference says where a webhooked create's extra time goes: the apiserver's
    own measure of each webhook call, and the operator's of its handler."""
    return {"apiserver": _scrape(f"https://127.0.0.1:{localcluster.API_PORT}/metrics", True),
            "operator": _scrape(f"http://127.0.0.1:{install.METRICS_PORT}/metrics", False)}


def mean_ms(before: str, after: str, metric: str, **labels: str) -> float:
    (s0, c0), (s1, c1) = _sum_count(before, metric, **labels), _sum_count(after, metric, **labels)
    return (s1 - s0) / (c1 - c0) * 1e3 if c1 > c0 else float("nan")


def through_apiserver(n: int) -> dict:
    from acgs_operator.webhookconfig import build_webhook_configuration

    k = localcluster.kubectl
    tag = uuid.uuid4().hex[:6]
    namespaces = {"kopf": f"bench-wh-{tag}", "process": f"bench-proc-{tag}", "none": f"bench-nowh-{tag}"}
    for server, ns in namespaces.items():
        k("create", "namespace", ns)
        if server != "none":
            k("label", "namespace", ns, f"{HOOK_LABEL}={server}")
    ca = (install.WEBHOOK_DIR / "ca.crt").read_bytes()
    config = build_webhook_configuration(ca_bundle=ca, url_base=f"https://127.0.0.1:{install.WEBHOOK_PORT}")
    in_loop = build_webhook_configuration(ca_bundle=ca, url_base=f"https://127.0.0.1:{IN_LOOP_PORT}")
    for hook in config["webhooks"]:
        hook["namespaceSelector"] = {"matchLabels": {HOOK_LABEL: "process"}}
    for hook in in_loop["webhooks"]:
        hook["name"] = "inloop-" + hook["name"]
        hook["namespaceSelector"] = {"matchLabels": {HOOK_LABEL: "kopf"}}
    config["webhooks"] += in_loop["webhooks"]
    import yaml

    k("apply", "-f", "-", input_=yaml.safe_dump(config))
    try:
        time.sleep(2)  # the apiserver picks up webhook configuration changes asynchronously
        for ns in namespaces.values():
            creates(ns, 20)  # warm-up
        # Interleave the three so drift on a shared 2-core machine affects all alike.
        times: dict[str, list[float]] = {server: [] for server in namespaces}
        before = time_split()
        for block in range(5):
            order = list(namespaces)[block % 3:] + list(namespaces)[:block % 3]
            for server in order:
                times[server] += creates(namespaces[server], n // 5)
        after = time_split()
    finally:
        install.install_webhook()
        for ns in namespaces.values():
            k("delete", "namespace", ns, "--wait=false")
    ms = {server: median(v) * 1e3 for server, v in times.items()}
    hook = "apiserver_admission_webhook_admission_duration_seconds"
    split = {"kopf_call": mean_ms(before["apiserver"], after["apiserver"], hook,
                                  name="inloop-trainingjobs.validate.acgs.io", operation="CREATE"),
             "process_call": mean_ms(before["apiserver"], after["apiserver"], hook,
                                     name="trainingjobs.validate.acgs.io", operation="CREATE"),
             "handler": mean_ms(before["operator"], after["operator"], "acgs_admission_duration_seconds",
                                kind="TrainingJob")}
    return {"n": len(times["none"]), "ms": ms, "ratio": {s: ms[s] / ms["none"] for s in SERVERS},
            "split": split}


def run() -> str:
    localcluster.up()
    install.install_crds()
    install.install_webhook()
    os.environ["ACGS_IN_LOOP_WEBHOOK_PORT"] = str(IN_LOOP_PORT)  # the baseline, beside the webhook process
    try:
        install.start_operator(restart=True)
        wait_serving(IN_LOOP_PORT)
        # A fresh operator first lists and resumes every object left in the cluster, which would
        # load the in-loop baseline's first half only: let that settle.
        time.sleep(SETTLE_SECONDS)
        d = direct_both(rate=500, seconds=DIRECT_SECONDS, profile=PYSPY_OUT)
        a = through_apiserver(300)
        loaded = under_reconcile_load(500, DIRECT_SECONDS, LOAD_OBJECTS)
    finally:
        del os.environ["ACGS_IN_LOOP_WEBHOOK_PORT"]
        install.start_operator(restart=True)  # as deployed again
    rows = []
    for server, label in (("kopf", "before: kopf's webhook in the operator's event loop"),
                          ("process", "after: the webhook's own process (servers/webhook.py; as deployed)")):
        r = d[server]
        rows += [f"| {label} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | "
                 f"{verdict(r['p99_ms'], 2.0, False)} | {a['ms'][server]:.2f} ms ÷ {a['ms']['none']:.2f} ms = "
                 f"{a['ratio'][server]:.2f} | {verdict(a['ratio'][server], 1.3, False)} | "
                 f"{loaded[server]['p50_ms']:.2f} ms | {loaded[server]['p99_ms']:.2f} ms | "
                 f"{verdict(loaded[server]['p99_ms'], 2.0, False)} |"]
    achieved = min(x["achieved_rps"] for x in d.values())
    sp = a["split"]
    split = (f"Where a webhooked create's extra time goes (means over the same creates): the webhook process "
             f"adds {a['ms']['process'] - a['ms']['none']:.2f} ms per create (medians; kopf's in-loop webhook "
             f"{a['ms']['kopf'] - a['ms']['none']:.2f} ms); the apiserver measures its call to the webhook "
             f"process at {sp['process_call']:.2f} ms (to kopf's {sp['kopf_call']:.2f} ms), of which the "
             f"handler (`admission.validate`, acgs_admission_duration_seconds) is {sp['handler']:.2f} ms; the "
             "rest of the call is the HTTPS round trip and aiohttp's request handling, and the remainder of "
             "the create's extra time is the apiserver's own (encoding the AdmissionReview, dispatch).")
    return "\n".join([
        "## Admission webhook",
        "",
        f"Direct over TLS: open loop at 500 requests/s, {DIRECT_SECONDS:.0f} s per server in two alternating "
        f"halves ({d['kopf']['requests']} AdmissionReviews each; achieved ≥ {achieved:.0f}/s; "
        f"rejected: kopf {d['kopf']['errors']}, process {d['process']['errors']}). Through the apiserver: median of "
        f"{a['n']} server-dry-run creates of the same TrainingJob per namespace, the three namespaces "
        "interleaved in five blocks; the operator reconciles nothing meanwhile. Under load: the same "
        f"direct measurement while the operator reconciles {LOAD_OBJECTS} TrainingJobs created at once.",
        "",
        "| server | direct p50 | direct p99 | p99 ≤ 2 ms | webhooked ÷ webhook-less create | ≤ 1.3 "
        "| p50 under load | p99 under load | p99 ≤ 2 ms |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        split,
        "",
    ])


if __name__ == "__main__":
    print(run())
