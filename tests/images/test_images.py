"""The product's images, built by `make images` (podman), run the way the pods run them: as UID
65532, read-only root filesystem, every capability dropped, no privilege escalation."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from pki import webhook_certs
from tests.conftest import ROOT, Cluster, wait_until

pytestmark = pytest.mark.images
REGISTRY = os.environ.get("IMAGE_REGISTRY", "ghcr.io/acgs")
TAG = os.environ.get("IMAGE_TAG", "0.1.0")
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "hack/images/containers.conf")}
RESTRICTED = ["--user=65532:65532", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
              "--tmpfs=/tmp:rw,size=64m,mode=1777"]


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=PODMAN_ENV,
                          check=False)


def image(name: str) -> str:
    ref = f"{REGISTRY}/{name}:{TAG}"
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc); `make images` builds the images")
    if podman("image", "exists", ref).returncode:
        pytest.skip(f"{ref} is not built; run `make images`")
    return ref


@pytest.mark.parametrize(("name", "entry", "expected"), [
    ("trainer", "acgs-train", "--max-steps"),
    ("server", "acgs-serve", "--expected-digest"),
])
def test_entrypoint_runs_restricted(name: str, entry: str, expected: str) -> None:
    ref = image(name)
    # The image's own user and entrypoint, then again with the restrictions a pod applies.
    inspected = podman("image", "inspect", ref, "--format", "{{.Config.User}} {{json .Config.Entrypoint}}")
    assert inspected.stdout.split()[0] == "65532:65532", inspected.stdout
    assert entry in inspected.stdout
    proc = podman("run", "--rm", "--network=none", *RESTRICTED, ref, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expected in proc.stdout
    # A read-only root really is read-only for the program's user.
    proc = podman("run", "--rm", "--network=none", *RESTRICTED, "--entrypoint=/opt/venv/bin/python", ref,
                  "-c", "import os; open('/opt/venv/x', 'w')")
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr, proc.stderr[-2000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.cluster
def test_operator_image_serves_health(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    ref = image("operator")  # skips before any control plane starts
    cluster: Cluster = request.getfixturevalue("cluster")
    port, webhook_port = free_port(), free_port()
    secrets = tmp_path / "secrets"
    webhook_certs(secrets)  # as the webhook's TLS Secret provides them in a cluster
    (secrets / "kubeconfig").write_text(cluster.kubeconfig.read_text())
    for f in secrets.iterdir():
        f.chmod(0o644)  # read by UID 65532 inside the container (a throwaway test CA)
    name = f"acgs-operator-test-{port}"
    run = podman("run", "-d", "--name", name, "--network=host", *RESTRICTED,
                 "-v", f"{secrets}:/etc/acgs:ro", "-e", "KUBECONFIG=/etc/acgs/kubeconfig",
                 "-e", "ACGS_WEBHOOK_CERT=/etc/acgs/tls.crt", "-e", "ACGS_WEBHOOK_KEY=/etc/acgs/tls.key",
                 "-e", f"ACGS_WEBHOOK_PORT={webhook_port}", "-e", "ACGS_WEBHOOK_HOST=127.0.0.1",
                 "-e", f"ACGS_HEALTH_PORT={port}", "-e", "ACGS_METRICS_PORT=0", "-e", "ACGS_PROGRESS_PORT=0",
                 "-e", "ACGS_NAMESPACES=acgs-image-test", ref)
    assert run.returncode == 0, run.stderr

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            state = podman("inspect", name, "--format", "{{.State.Status}}").stdout.strip()
            assert state == "running", podman("logs", name).stderr[-3000:]
            return False

    try:
        wait_until(healthy, timeout=90, what="the operator container's /healthz")
        user = podman("exec", name, "id", "-u")
        assert user.stdout.strip() == "65532"
    finally:
        podman("rm", "-f", "-t", "2", name)
