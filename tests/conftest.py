"""Shared fixtures. Tests marked `cluster` run against the real local control plane
(hack/localcluster.py), started once per session, or reused when one is already up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))

import localcluster  # noqa: E402

KUBECTL = str(ROOT / ".venv/bin/kubectl") if (ROOT / ".venv/bin/kubectl").exists() else "kubectl"


class Cluster:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def kubectl(self, *args: str, input: str | None = None, check: bool = False,
                timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([KUBECTL, f"--kubeconfig={self.kubeconfig}", *args], input=input,
                              text=True, capture_output=True, timeout=timeout)
        if check and proc.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json", check=True).stdout)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


T = TypeVar("T")


@pytest.fixture(scope="session")
def builtin_base() -> None:
    """The built-in tiny base, pre-trained on public data, built once into the shared cache
    (~/.cache/acgs/models; `make base` does the same) so no timed trainer run pays for it."""
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, "-m", "acgs_trainer.cli", "build-base"],
                          capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]


def wait_until(predicate: Callable[[], T], timeout: float = 20, what: str = "the condition",
               interval: float = 0.25) -> T:
    """Poll until `predicate` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    started = False
    if not (localcluster.PKI / "ca.crt").exists() or not localcluster.api_ready():
        localcluster.up()
        started = True
    yield Cluster(localcluster.KUBECONFIG)
    if started and not os.environ.get("ACGS_KEEP_CLUSTER"):
        localcluster.down()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test (restricted Pod Security), deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name, check=True)
    cluster.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted", check=True)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def operator_is_current() -> bool:
    """The running operator was started after the last change to the operator's code."""
    import install

    pidfile = localcluster.PIDS / "operator.pid"
    if localcluster.pid_of("operator") is None or not install.healthy() or not pidfile.exists():
        return False
    newest = max(p.stat().st_mtime for p in (ROOT / "operator/acgs_operator").rglob("*.py"))
    return pidfile.stat().st_mtime > newest


@pytest.fixture(scope="session")
def operator(cluster: Cluster) -> Iterator[Cluster]:
    """CRDs, the webhook registration and the operator from this checkout, as a real process
    (a running one is reused unless the operator's code changed since it started)."""
    import install

    install.install_crds()
    install.install_webhook()
    if os.environ.get("ACGS_RESTART_OPERATOR") or not operator_is_current():
        install.start_operator(restart=True)
    yield cluster
