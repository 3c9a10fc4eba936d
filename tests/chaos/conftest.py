"""Fault tests on the local control plane (marker `chaos`; `make test-chaos`). They stop, kill and
restart the shared operator (and kube-apiserver/etcd), so each fixture puts the shared operator
back afterwards. Operator processes of a test get their own health port, log and pidfile."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from ..conftest import ROOT, Cluster, localcluster, wait_until

HASH = "cdd01ef066bc6cf2"
# Ports of a second operator process beside the first (the first takes the cluster's webhook port).
def second_ports() -> dict[str, int]:
    import install

    return {"webhook_port": install.WEBHOOK_PORT + 1, "health_port": install.HEALTH_PORT + 11}


FAST_LEASE = {"ACGS_LEADER_LEASE_SECONDS": "4", "ACGS_LEADER_RENEW_DEADLINE_SECONDS": "3",
              "ACGS_LEADER_RETRY_SECONDS": "0.5"}


def samples() -> dict[str, dict[str, Any]]:
    """One valid object of each kind (manifests/samples), by kind."""
    out = {}
    for path in sorted((ROOT / "manifests/samples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion") == "acgs.io/v1alpha1":
                out[doc["kind"]] = doc
    return out


def training_job(name: str, namespace: str) -> dict[str, Any]:
    """A TrainingJob whose pod kwok runs (and completes, leaving no result): children and a final
    status without spending a CPU on training."""
    return {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"constitutionalHash": HASH, "modelName": "chaos",
                     "data": {"generate": {"type": "constitutional_ai"}},
                     "resources": {"cpu": "100m", "memory": "512Mi"}, "output": {"pvc": "artifacts"},
                     "backoffLimit": 0}}


def apply_all(cluster: Cluster, objects: list[dict[str, Any]], timeout: float = 300) -> subprocess.CompletedProcess:
    """One multi-document `kubectl apply` (each document admitted or refused on its own)."""
    return cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects), timeout=timeout)


@dataclass
class OperatorProcess:
    name: str
    proc: subprocess.Popen
    identity: str
    health_port: int
    log: Path

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Operators:
    """Operator processes of one test; `shared` (the session's) is stopped first and restored after."""

    cluster: Cluster
    started: list[OperatorProcess] = field(default_factory=list)

    def start(self, name: str, *, webhook_port: int | None = None, health_port: int | None = None,
              wait_leader: bool = True, **env: str) -> OperatorProcess:
        import install

        webhook_port = webhook_port or install.WEBHOOK_PORT
        health_port = health_port or install.HEALTH_PORT + 10
        identity = f"{name}-{os.urandom(3).hex()}"
        environment = {**install.operator_env(webhook_port), "ACGS_HEALTH_PORT": str(health_port),
                       "ACGS_METRICS_PORT": "0", "ACGS_PROGRESS_PORT": "0", "ACGS_LEADER_IDENTITY": identity,
                       **env}
        (localcluster.LOGS / f"{name}.log").unlink(missing_ok=True)
        proc = install.spawn_operator(name, environment)
        op = OperatorProcess(name, proc, identity, health_port, localcluster.LOGS / f"{name}.log")
        self.started.append(op)
        wait_until(lambda: proc.poll() is not None or install.healthy(health_port), 60, f"operator {name} to start")
        assert proc.poll() is None, op.log_text()[-3000:]
        if wait_leader:
            wait_until(lambda: proc.poll() is not None or (install.lease_holder() == identity
                                                            and install.serving(webhook_port)), 60,
                       f"operator {name} to lead and serve its webhook")
            assert proc.poll() is None, op.log_text()[-3000:]
        return op

    def stop_all(self) -> None:
        import install

        for op in self.started:
            install.stop_pidfile(localcluster.PIDS / f"{op.name}.pid")


@pytest.fixture
def operators(operator: Cluster) -> Iterator[Operators]:
    import install

    install.stop_pidfile(localcluster.PIDS / "operator.pid")  # SIGTERM: it releases the Lease
    ops = Operators(operator)
    try:
        yield ops
    finally:
        ops.stop_all()
        install.install_webhook()
        install.start_operator(restart=True)


@pytest.fixture
def chaos_namespace(operator: Cluster) -> Iterator[str]:
    """A namespace with a bound `artifacts` claim, so kwok-run trainer pods get scheduled."""
    name = f"chaos-{os.urandom(3).hex()}"
    operator.kubectl("create", "namespace", name, check=True)
    operator.kubectl("apply", "-n", name, "-f", "-", check=True, input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "artifacts"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    yield name
    operator.kubectl("delete", "namespace", name, "--wait=false")


def jobs_by_owner(cluster: Cluster, namespace: str) -> dict[str, list[str]]:
    jobs = cluster.get_json("jobs", "-n", namespace)["items"]
    out: dict[str, list[str]] = {}
    for job in jobs:
        for ref in job["metadata"].get("ownerReferences") or []:
            if ref["kind"] == "TrainingJob":
                out.setdefault(ref["name"], []).append(job["metadata"]["name"])
    return out


def events_by_reason(cluster: Cluster, namespace: str, reason: str) -> dict[str, int]:
    items = cluster.get_json("events", "-n", namespace, "--field-selector", f"reason={reason}")["items"]
    counts: dict[str, int] = {}
    for event in items:
        key = event["involvedObject"]["name"]
        counts[key] = counts.get(key, 0) + int(event.get("count") or 1)
    return counts


def phases(cluster: Cluster, namespace: str, plural: str = "trainingjobs") -> dict[str, str | None]:
    return {o["metadata"]["name"]: (o.get("status") or {}).get("phase")
            for o in cluster.get_json(plural, "-n", namespace)["items"]}


def elapsed(since: float) -> float:
    return time.monotonic() - since
