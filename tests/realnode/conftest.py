"""Tests on the real node (hack/realnode.py): pods run as containers by kubelet + containerd.
They need `make test-realnode` (ACGS_REAL_NODE=1 starts the node with the control plane)."""

from __future__ import annotations

import json
import os
import shlex

import pytest

from tests.conftest import Cluster, wait_until

NODE = "acgs-real-0"
BASE_IMAGE = os.environ.get("ACGS_BASE_IMAGE", "localhost/acgs-base:bookworm")


@pytest.fixture(scope="session")
def real_node(request: pytest.FixtureRequest) -> Cluster:
    # Decided before any control plane starts: without the real node nothing here can run.
    if os.environ.get("ACGS_REAL_NODE") != "1":
        pytest.skip("needs the real node: run `make test-realnode` (kubelet + containerd; see README)")
    cluster: Cluster = request.getfixturevalue("cluster")
    node = cluster.get_json("node", NODE)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", ready
    return cluster


@pytest.fixture
def real_namespace(real_node: Cluster, namespace: str) -> str:
    """The shared fresh restricted namespace, once the real node is known to be there."""
    return namespace


def restricted_pod(name: str, namespace: str, labels: dict[str, str], script: str,
                   image: str = BASE_IMAGE) -> dict:
    """A pod of the restricted Pod Security profile running `python3 -c script` on the real node."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": "Never",
                "command": ["python3", "-u", "-c", script],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


HTTP_SERVER = """
import http.server, socketserver, sys
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from " + self.server.name
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
for port in {ports}:
    s = socketserver.ThreadingTCPServer(("0.0.0.0", port), Hello); s.name = b"{name}"
    import threading; threading.Thread(target=s.serve_forever, daemon=True).start()
import time; time.sleep(1e9)
"""
SLEEPER = "import time; time.sleep(1e9)"


def http_server_pod(name: str, namespace: str, labels: dict[str, str], ports: tuple[int, ...]) -> dict:
    return restricted_pod(name, namespace, labels, HTTP_SERVER.format(ports=list(ports), name=name))


def apply(cluster: Cluster, *objects: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
                    check=True)


def wait_running(cluster: Cluster, namespace: str, *names: str) -> dict[str, str]:
    """Waits until the pods run and returns their IPs."""
    def ips() -> dict[str, str] | None:
        pods = {p["metadata"]["name"]: p for p in cluster.get_json("pods", "-n", namespace)["items"]}
        if all(pods.get(n, {}).get("status", {}).get("phase") == "Running" and pods[n]["status"].get("podIP")
               for n in names):
            return {n: pods[n]["status"]["podIP"] for n in names}
        return None
    return wait_until(ips, timeout=120, what=f"pods {names} running", interval=1)


def probe(cluster: Cluster, namespace: str, pod: str, host: str, port: int, udp_dns: bool = False) -> str:
    """From inside `pod` (kubectl exec): 'ok <body>' when a TCP/HTTP connection succeeds, else 'blocked'."""
    if udp_dns:
        code = f"import socket; print('ok', socket.gethostbyname({host!r}))"
    else:
        code = ("import urllib.request\n"
                f"print('ok', urllib.request.urlopen('http://{host}:{port}/', timeout=4).read().decode())")
    script = f"try:\n{_indent(code)}\nexcept Exception as e:\n    print('blocked', type(e).__name__, e)"
    proc = cluster.kubectl("exec", "-n", namespace, pod, "--", "python3", "-c", script, timeout=60)
    assert proc.returncode == 0, f"kubectl exec {shlex.quote(pod)} failed: {proc.stderr}"
    return proc.stdout.strip()


def _indent(code: str) -> str:
    return "\n".join("    " + line for line in code.splitlines())
