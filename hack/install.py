#!/usr/bin/env python3
"""Install the acgs.io API into the local control plane and run the operator against it.

    python hack/install.py crds        # apply crds/ and wait until Established
    python hack/install.py constitution  # the acgs-constitution ConfigMap (acgs-system)
    python hack/install.py webhook     # certs + ValidatingWebhookConfiguration -> https://127.0.0.1:PORT
    python hack/install.py operator    # start the operator in the background (pidfile, log, healthz)
    python hack/install.py all
    python hack/install.py run         # crds + webhook, then the operator in the foreground
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import localcluster  # noqa: E402
from localcluster import LOGS, PIDS, ROOT, STATE, kubectl, log, pid_of, stop_pidfile  # noqa: E402
from pki import webhook_certs  # noqa: E402

WEBHOOK_DIR = STATE / "webhook"
WEBHOOK_PORT = int(os.environ.get("ACGS_WEBHOOK_PORT", "9443"))
HEALTH_PORT = int(os.environ.get("ACGS_HEALTH_PORT", "8081"))
METRICS_PORT = int(os.environ.get("ACGS_METRICS_PORT", "8082"))


def install_crds() -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    names = [f"crd/{p.name.split('_', 1)[1].removesuffix('.yaml')}.acgs.io"
             for p in (ROOT / "crds").glob("acgs.io_*.yaml")]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    # Established comes a moment before the apiserver can serve the new resources ("storage is
    # (re)initializing"); wait for a list to work so the operator's first watches do not fail.
    plurals = ",".join(n.removeprefix("crd/") for n in names)
    deadline = time.monotonic() + 30
    while kubectl("get", plurals, "-A", check=False).returncode and time.monotonic() < deadline:
        time.sleep(0.25)


def install_webhook(port: int = WEBHOOK_PORT) -> None:
    from acgs_operator.webhookconfig import build_webhook_configuration

    certs = webhook_certs(WEBHOOK_DIR)
    config = build_webhook_configuration(ca_bundle=(certs / "ca.crt").read_bytes(),
                                         url_base=f"https://127.0.0.1:{port}")
    kubectl("apply", "-f", "-", input_=yaml.safe_dump(config))


CONSTITUTION_NAMESPACE = "acgs-system"
CONSTITUTION_FILE = STATE / "operator" / "constitution.yaml"


def install_constitution() -> str:
    """Apply the operator's constitution ConfigMap, then give the local operator process what a pod
    would see: the ConfigMap's file (read back from the apiserver) and its pinned digest."""
    import json

    from acgs_operator.constitution import ANNOTATION_CONTENT_DIGEST, CONFIG_MAP_NAME, default_config_map

    kubectl("apply", "-f", "-", input_=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": CONSTITUTION_NAMESPACE}}))
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
            input_=yaml.safe_dump(default_config_map(CONSTITUTION_NAMESPACE)))
    stored = json.loads(kubectl("get", "configmap", CONFIG_MAP_NAME, "-n", CONSTITUTION_NAMESPACE,
                                "-o", "json").stdout)
    CONSTITUTION_FILE.parent.mkdir(parents=True, exist_ok=True)
    CONSTITUTION_FILE.write_text(stored["data"][CONSTITUTION_FILE.name])
    return str(stored["metadata"]["annotations"][ANNOTATION_CONTENT_DIGEST])


def progress_key() -> str:
    """A stable HMAC key for trainer progress tokens, so an operator restart keeps running pods' tokens valid."""
    path = STATE / "operator" / "progress.key"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def real_node_env() -> dict[str, str]:
    """With the real node, trainer pods POST progress to the operator process on this host, through
    the node's bridge address (127.0.0.1 in a container is the container itself)."""
    if not localcluster.REAL_NODE:
        return {}
    import realnode

    port = os.environ.get("ACGS_PROGRESS_PORT", "8083")
    return {"ACGS_PROGRESS_URL": f"http://{realnode.NODE_IP}:{port}"}


def operator_env(port: int = WEBHOOK_PORT) -> dict[str, str]:
    return {
        **os.environ,
        **real_node_env(),
        "KUBECONFIG": str(localcluster.KUBECONFIG),
        "ACGS_WEBHOOK_HOST": "127.0.0.1",
        "ACGS_WEBHOOK_PORT": str(port),
        "ACGS_WEBHOOK_CERT": str(WEBHOOK_DIR / "tls.crt"),
        "ACGS_WEBHOOK_KEY": str(WEBHOOK_DIR / "tls.key"),
        "ACGS_HEALTH_PORT": str(HEALTH_PORT),
        "ACGS_METRICS_PORT": str(METRICS_PORT),
        "ACGS_PROGRESS_KEY": progress_key(),
        "ACGS_CONSTITUTION_PATH": str(CONSTITUTION_FILE),
        "ACGS_CONSTITUTION_DIGEST": install_constitution(),
    }


def healthy(port: int = HEALTH_PORT) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


LEASE_NAMESPACE = "acgs-system"


def lease_holder() -> str | None:
    """Who holds the operator's leader-election Lease (leader.py), if anyone."""
    out = kubectl("get", "lease", "acgs-operator", "-n", LEASE_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}",
                  check=False)
    return out.stdout.strip() or None if out.returncode == 0 else None


def spawn_operator(name: str, env: dict[str, str]) -> subprocess.Popen:
    """An operator process with its own pidfile and log (`localcluster down` stops it)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "ab") as out:
        proc = subprocess.Popen([str(ROOT / ".venv/bin/acgs-operator")], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (PIDS / f"{name}.pid").write_text(str(proc.pid))
    return proc


# The local operator's leader election. Nothing restarts a local process the way the kubelet
# restarts a pod, and a leader that cannot renew for the renew deadline exits by design; so locally
# the deadline outlasts a control-plane restart (~20 s here), and the operator rides it out.
LOCAL_LEASE = {"ACGS_LEADER_LEASE_SECONDS": "45", "ACGS_LEADER_RENEW_DEADLINE_SECONDS": "40",
               "ACGS_LEADER_RETRY_SECONDS": "2"}


def serving(port: int = WEBHOOK_PORT) -> bool:
    """The webhook port accepts connections (a new leader restarts its webhook server)."""
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_operator(restart: bool = False) -> None:
    """The local operator; returns once it is healthy, holds the leader-election Lease and serves
    its webhook (a predecessor that was killed, not stopped, leaves a Lease that expires first)."""
    if restart:
        stop_pidfile(PIDS / "operator.pid")
    if pid_of("operator") and healthy() and (lease_holder() or "").startswith("local-"):
        return
    stop_pidfile(PIDS / "operator.pid")
    identity = f"local-{os.urandom(4).hex()}"
    proc = spawn_operator("operator", {**operator_env(), **LOCAL_LEASE, "ACGS_LEADER_IDENTITY": identity})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"operator exited with {proc.returncode}; see {LOGS / 'operator.log'}")
        if healthy() and lease_holder() == identity and serving():
            log(f"operator running (pid {proc.pid}, leading as {identity}); log: {LOGS / 'operator.log'}")
            return
        time.sleep(0.25)
    raise SystemExit(f"operator not healthy and leading after 90s; see {LOGS / 'operator.log'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["crds", "constitution", "webhook", "operator", "all", "run"])
    parser.add_argument("--restart", action="store_true", help="operator: restart if running")
    args = parser.parse_args()
    if args.what in ("crds", "all", "run"):
        install_crds()
    if args.what == "constitution":
        install_constitution()
    if args.what in ("webhook", "all", "run"):
        install_webhook()
    if args.what in ("operator", "all"):
        start_operator(args.restart)
    if args.what == "run":
        stop_pidfile(PIDS / "operator.pid")  # one operator per cluster: the webhook port is fixed
        exe = str(ROOT / ".venv/bin/acgs-operator")
        os.execve(exe, [exe], operator_env())
    return 0


if __name__ == "__main__":
    sys.exit(main())
