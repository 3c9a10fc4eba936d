"""Admission webhook cost.

1. Latency of the webhook itself, p50/p99, at a fixed request rate (open loop: requests are sent
   on schedule whether or not earlier ones finished), straight over TLS to the operator.
2. A webhooked create through the apiserver as a ratio to a webhook-less create of the same object,
   both measured in this run (the webhook is skipped for one namespace by a namespaceSelector).
"""

from __future__ import annotations

import asyncio
import json
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
SKIP_LABEL = "acgs.io/bench-skip-webhook"


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


async def direct(rate: float, seconds: float) -> dict:
    ctx = ssl.create_default_context(cafile=str(install.WEBHOOK_DIR / "ca.crt"))
    url = f"https://127.0.0.1:{install.WEBHOOK_PORT}/validate-trainingjobs"
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
    return {"requests": len(bodies), "achieved_rps": len(bodies) / elapsed, "errors": errors,
            "p50_ms": percentile(latencies, 0.5) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3}


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


def through_apiserver(n: int) -> dict:
    from acgs_operator.webhookconfig import build_webhook_configuration

    k = localcluster.kubectl
    with_ns, without_ns = f"bench-wh-{uuid.uuid4().hex[:6]}", f"bench-nowh-{uuid.uuid4().hex[:6]}"
    for ns in (with_ns, without_ns):
        k("create", "namespace", ns)
    k("label", "namespace", without_ns, f"{SKIP_LABEL}=true")
    config = build_webhook_configuration(ca_bundle=(install.WEBHOOK_DIR / "ca.crt").read_bytes(),
                                         url_base=f"https://127.0.0.1:{install.WEBHOOK_PORT}")
    for hook in config["webhooks"]:
        hook["namespaceSelector"] = {"matchExpressions": [{"key": SKIP_LABEL, "operator": "DoesNotExist"}]}
    import yaml

    k("apply", "-f", "-", input_=yaml.safe_dump(config))
    try:
        time.sleep(2)  # the apiserver picks up webhook configuration changes asynchronously
        creates(with_ns, 20), creates(without_ns, 20)  # warm-up
        # Interleave the two so drift on a shared 2-core machine affects both alike.
        hooked, plain = [], []
        for _ in range(5):
            hooked += creates(with_ns, n // 5)
            plain += creates(without_ns, n // 5)
    finally:
        install.install_webhook()
        for ns in (with_ns, without_ns):
            k("delete", "namespace", ns, "--wait=false")
    return {"n": len(hooked), "with_ms": median(hooked) * 1e3, "without_ms": median(plain) * 1e3,
            "ratio": median(hooked) / median(plain)}


def run() -> str:
    localcluster.up()
    install.install_crds()
    install.install_webhook()
    install.start_operator()
    d = asyncio.run(direct(rate=500, seconds=10))
    a = through_apiserver(200)
    return "\n".join([
        "## Admission webhook",
        "",
        f"Direct over TLS, open loop at 500 requests/s for 10 s ({d['requests']} AdmissionReviews, "
        f"achieved {d['achieved_rps']:.0f}/s, {d['errors']} rejected):",
        "",
        "| metric | measured | target | |",
        "|---|---|---|---|",
        f"| p50 latency | {d['p50_ms']:.2f} ms | | |",
        f"| p99 latency | {d['p99_ms']:.2f} ms | ≤ 2 ms | {verdict(d['p99_ms'], 2.0, False)} |",
        f"| webhooked create ÷ webhook-less create (median of {a['n']}, server dry-run) | "
        f"{a['ratio']:.2f} ({a['with_ms']:.2f} ms ÷ {a['without_ms']:.2f} ms) | ≤ 1.3 | "
        f"{verdict(a['ratio'], 1.3, False)} |",
        "",
    ])


if __name__ == "__main__":
    print(run())
