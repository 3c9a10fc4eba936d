"""The admission webhook's own process without a cluster: real HTTPS with a real certificate, the
verdicts, its metrics through the operator's collector, a restart after it dies, and its death
with the operator (even when the operator is SIGKILLed)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from acgs_operator.config import Settings
from acgs_operator.constants import DEFAULT_CONSTITUTIONAL_HASH
from acgs_operator.servers import webhook

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "hack"))

import pki  # noqa: E402

SPEC = {"constitutionalHash": DEFAULT_CONSTITUTIONAL_HASH, "modelName": "constitutional-ai",
        "data": {"generate": {"type": "constitutional_ai", "size": 100}}, "privacy": {"targetEpsilon": 4}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def review(spec: dict) -> dict:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": "acgs.io", "version": "v1alpha1", "kind": "TrainingJob"},
        "operation": "CREATE", "object": {"spec": spec}, "oldObject": None}}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki.webhook_certs(tmp_path_factory.mktemp("webhook"))


def settings_for(certs: Path, port: int) -> Settings:
    return Settings(webhook_host="127.0.0.1", webhook_port=port, webhook_cert=certs / "tls.crt",
                    webhook_key=certs / "tls.key")


@pytest.fixture
def server(certs: Path) -> Iterator[tuple[webhook.WebhookProcess, int]]:
    port = free_port()
    process = webhook.WebhookProcess(settings_for(certs, port))
    process.start()
    try:
        wait_for(lambda: listening(port), 30, "the webhook process to listen")
        yield process, port
    finally:
        process.stop()


def post(certs: Path, port: int, body: bytes, path: str = "/validate-trainingjobs") -> tuple[int, dict | str]:
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_verdicts_over_tls_and_metrics_through_the_operator(server, certs: Path) -> None:
    process, port = server
    good = review(SPEC)
    status, body = post(certs, port, json.dumps(good).encode())
    assert status == 200 and body["response"] == {"uid": good["request"]["uid"], "allowed": True}
    status, body = post(certs, port, json.dumps(review({**SPEC, "constitutionalHash": "0123456789abcdef"})).encode())
    assert status == 200 and body["response"]["allowed"] is False
    assert body["response"]["status"]["code"] == 422
    assert "TrainingJob rejected" in body["response"]["status"]["message"]
    assert f"expected '{DEFAULT_CONSTITUTIONAL_HASH}'" in body["response"]["status"]["message"]
    status, text = post(certs, port, b"[1, 2]")
    assert status == 400 and "AdmissionReview" in text
    status, _ = post(certs, port, json.dumps(good).encode(), path="/validate-nothing")
    assert status == 404

    families = {f.name: f for f in webhook.WebhookMetrics(process).collect()}
    counted = {(s.labels["kind"], s.labels["operation"], s.labels["result"]): s.value
               for s in families["acgs_admission_requests"].samples if s.name.endswith("_total")}
    assert counted[("TrainingJob", "CREATE", "allowed")] == 1
    assert counted[("TrainingJob", "CREATE", "rejected")] == 1
    assert counted[("Deployment", "UPDATE", "error")] == 0  # present from the start, for increase()
    assert "acgs_admission_duration_seconds" in families


def test_restarted_when_it_dies(server, certs: Path) -> None:
    import asyncio

    process, port = server
    first = process.process
    assert first is not None and first.pid is not None
    os.kill(first.pid, signal.SIGKILL)

    async def supervise_until_restarted() -> None:
        task = asyncio.create_task(process.supervise())
        while process.process is first or not listening(port):
            await asyncio.sleep(0.1)
        process.stopping = True
        await task

    asyncio.run(asyncio.wait_for(supervise_until_restarted(), 30))
    assert process.restarts == 1
    assert post(certs, port, json.dumps(review(SPEC)).encode())[0] == 200


OPERATOR = """
import sys, time
from pathlib import Path
from acgs_operator.config import Settings
from acgs_operator.servers import webhook
certs, port = Path(sys.argv[1]), int(sys.argv[2])
if __name__ == "__main__":
    process = webhook.WebhookProcess(Settings(webhook_host="127.0.0.1", webhook_port=port,
                                              webhook_cert=certs / "tls.crt", webhook_key=certs / "tls.key"))
    process.start()
    print(process.process.pid, flush=True)
    time.sleep(300)
"""


def test_dies_with_the_operator_even_when_it_is_sigkilled(certs: Path, tmp_path: Path) -> None:
    """failurePolicy Fail relies on it: no operator, no webhook, every acgs.io write refused."""
    port = free_port()
    script = tmp_path / "operator.py"
    script.write_text(OPERATOR)
    parent = subprocess.Popen([sys.executable, str(script), str(certs), str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        wait_for(lambda: listening(port), 30, "the webhook process to listen")
        parent.kill()
        parent.wait(10)
        wait_for(lambda: not os.path.exists(f"/proc/{child}") or
                 Path(f"/proc/{child}/stat").read_text().split()[2] == "Z", 10, "the webhook process to die")
        assert not listening(port)
    finally:
        parent.kill()


def test_kopf_serves_no_webhook_unless_the_benchmark_baseline_asks() -> None:
    """Admission is the webhook process's alone: neither the leader's nor the standby's kopf
    registers webhook handlers (kopf would otherwise answer on the event loop reconciliation uses)."""
    from acgs_operator import main

    def webhook_ids(registry) -> set[str]:  # type: ignore[no-untyped-def]
        return {h.id for h in registry._webhooks.get_all_handlers()}  # noqa: SLF001

    assert webhook_ids(main.registry()) == set()
    assert webhook_ids(main.registry(admission_only=True)) == set()
    assert webhook_ids(main.registry(in_loop_webhook=True)) == {
        "validate-trainingjobs", "validate-modelversions", "validate-deployments", "validate-flywheelpolicies"}
