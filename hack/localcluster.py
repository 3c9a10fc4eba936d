#!/usr/bin/env python3
"""A real local Kubernetes control plane without a container engine.

etcd + kube-apiserver + kube-controller-manager + kube-scheduler (built from Go modules by
build-control-plane.sh) and kwok for fake nodes. `up` is idempotent; `down` leaves no process behind.

    python hack/localcluster.py up|down|status|env
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pki import issue, make_ca, make_rsa_keypair  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("ACGS_CLUSTER_DIR", ROOT / ".cluster"))
PKI, LOGS, PIDS = STATE / "pki", STATE / "logs", STATE / "pids"
KUBECONFIG = STATE / "kubeconfig"
API_PORT = int(os.environ.get("ACGS_API_PORT", "6443"))
ETCD_PORT = int(os.environ.get("ACGS_ETCD_PORT", "2379"))
CM_PORT = int(os.environ.get("ACGS_CM_PORT", "10257"))
SCHEDULER_PORT = int(os.environ.get("ACGS_SCHEDULER_PORT", "10259"))
KWOK_PORT = int(os.environ.get("ACGS_KWOK_PORT", "10247"))
# ACGS_REAL_NODE=1 adds a kubelet node (hack/realnode.py). Its pods reach the apiserver through the
# `kubernetes` Service, so the apiserver then also listens beyond loopback and advertises the node
# bridge's address; Services come from the RFC 2544 range, like the pods, not private space.
REAL_NODE = os.environ.get("ACGS_REAL_NODE", "") == "1"
SERVICE_CIDR = os.environ.get("ACGS_SERVICE_CIDR", "198.18.128.0/17" if REAL_NODE else "10.96.0.0/16")
API_BIND = "0.0.0.0" if REAL_NODE else "127.0.0.1"
API_ADVERTISE = "198.19.0.1" if REAL_NODE else "127.0.0.1"
LOCAL_NODE = "acgs-local-0"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def log(msg: str) -> None:
    print(f"[localcluster] {msg}", file=sys.stderr, flush=True)


def binaries() -> Path:
    out = subprocess.run(["bash", str(ROOT / "hack/build-control-plane.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()
    return Path(out[-1])


def ensure_pki() -> None:
    if (PKI / "admin.crt").exists():
        return
    log("generating certificates")
    ca = make_ca("acgs-local-kubernetes-ca")
    ca.write(PKI / "ca.crt", PKI / "ca.key")
    issue(ca, "kube-apiserver", server=True,
          dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local"),
          ips=("127.0.0.1", "10.96.0.1", str(ipaddress.ip_network(SERVICE_CIDR)[1]), API_ADVERTISE),
          ).write(PKI / "apiserver.crt", PKI / "apiserver.key")
    issue(ca, "kubernetes-admin", org="system:masters", client=True).write(PKI / "admin.crt", PKI / "admin.key")
    private, public = make_rsa_keypair()
    (PKI / "sa.key").write_bytes(private)
    (PKI / "sa.pub").write_bytes(public)


def write_kubeconfig() -> None:
    b64 = lambda p: base64.b64encode((PKI / p).read_bytes()).decode()  # noqa: E731
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "acgs-local",
        "clusters": [{"name": "acgs-local", "cluster": {
            "server": f"https://127.0.0.1:{API_PORT}", "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "acgs-local", "context": {"cluster": "acgs-local", "user": "admin"}}],
    }
    KUBECONFIG.write_text(yaml.safe_dump(config))
    KUBECONFIG.chmod(0o600)


def pid_of(name: str) -> int | None:
    try:
        pid = int((PIDS / f"{name}.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    if pid_of(name):
        return
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=STATE, env=env)
    (PIDS / f"{name}.pid").write_text(str(proc.pid))


def api_ready(timeout: float = 2.0) -> bool:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{API_PORT}/readyz", context=ctx, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def alive(name: str) -> bool:
    if pid_of(name) is None or Path(f"/proc/{pid_of(name)}/stat").read_text().split()[2] == "Z":
        tail = (LOGS / f"{name}.log").read_text(errors="replace").splitlines()[-5:]
        raise SystemExit(f"[localcluster] {name} exited:\n" + "\n".join(tail))
    return True


def wait_for(what: str, check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise SystemExit(f"[localcluster] timed out after {timeout:.0f}s waiting for {what}; see {LOGS}/")


def kubectl(*args: str, input_: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    exe = ROOT / ".venv/bin/kubectl"
    proc = subprocess.run([str(exe if exe.exists() else "kubectl"), f"--kubeconfig={KUBECONFIG}", *args],
                          input=input_, text=True, capture_output=True)
    if check and proc.returncode:
        raise SystemExit(f"[localcluster] kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def node(name: str, *, cpu: str, memory: str, gpus: int, labels: dict, taints: list) -> dict:
    capacity = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "200Gi"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok", **labels}},
        "spec": {"taints": taints},
        "status": {"capacity": capacity, "allocatable": capacity,
                   "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake"}},
    }


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
NODES = [
    node("kwok-gpu-0", cpu="32", memory="256Gi", gpus=8,
         labels={"nvidia.com/gpu.present": "true", "acgs.io/accelerator": "nvidia"}, taints=[GPU_TAINT]),
    node("kwok-gpu-1", cpu="32", memory="256Gi", gpus=8,
         labels={"nvidia.com/gpu.present": "true", "acgs.io/accelerator": "nvidia"}, taints=[GPU_TAINT]),
    node("kwok-cpu-0", cpu="16", memory="64Gi", gpus=0, labels={}, taints=[]),
    # Pods bound here are run for real, as local processes, by hack/podrunner/; kwok only keeps
    # the node alive. The taint makes that opt-in: only pods that tolerate it land here.
    node(LOCAL_NODE, cpu="64", memory="256Gi", gpus=8,
         labels={"nvidia.com/gpu.present": "true", "acgs.io/local-runner": "true"},
         taints=[GPU_TAINT, {"key": "acgs.io/local-runner", "value": "true", "effect": "NoSchedule"}]),
]
if REAL_NODE:
    # The kubelet node (realnode.py) carries the acgs.io/local-runner label instead: the pods the
    # e2e tests and the demo place "where pods really run" then run as containers from the
    # product's images, with their securityContext and NetworkPolicies enforced. No pod runner.
    NODES = [n for n in NODES if n["metadata"]["name"] != LOCAL_NODE]


def up() -> None:
    t0 = time.monotonic()
    bin_dir = binaries()
    STATE.mkdir(parents=True, exist_ok=True)
    ensure_pki()
    write_kubeconfig()
    p = lambda name: str(PKI / name)  # noqa: E731
    start("etcd", [str(bin_dir / "etcd"), "--name=acgs", f"--data-dir={STATE / 'etcd'}",
                   f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
                   f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
                   f"--listen-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
                   f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
                   f"--initial-cluster=acgs=http://127.0.0.1:{ETCD_PORT + 1}",
                   "--unsafe-no-fsync", "--log-level=warn"])
    start("kube-apiserver", [
        str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
        f"--bind-address={API_BIND}", f"--advertise-address={API_ADVERTISE}", f"--secure-port={API_PORT}",
        f"--tls-cert-file={p('apiserver.crt')}", f"--tls-private-key-file={p('apiserver.key')}",
        f"--client-ca-file={p('ca.crt')}", f"--cert-dir={PKI}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={p('sa.pub')}", f"--service-account-signing-key-file={p('sa.key')}",
        "--authorization-mode=RBAC", "--enable-admission-plugins=NodeRestriction,PodSecurity",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--enable-priority-and-fairness=false",
        # Loopback cannot back the `kubernetes` Service's endpoints; only real pods need them.
        f"--endpoint-reconciler-type={'lease' if REAL_NODE else 'none'}", "--profiling=false", "--v=1",
        # kubectl logs/exec: reach kubelets at their InternalIP (no DNS for node names here), as admin.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--kubelet-client-certificate={p('admin.crt')}", f"--kubelet-client-key={p('admin.key')}",
    ])
    wait_for("kube-apiserver /readyz", lambda: alive("kube-apiserver") and api_ready(), 90)
    common = [f"--kubeconfig={KUBECONFIG}", f"--authentication-kubeconfig={KUBECONFIG}",
              f"--authorization-kubeconfig={KUBECONFIG}", "--leader-elect=false", "--bind-address=127.0.0.1",
              "--profiling=false"]
    start("kube-controller-manager", [
        str(bin_dir / "kube-controller-manager"), *common, f"--secure-port={CM_PORT}",
        f"--service-account-private-key-file={p('sa.key')}", f"--root-ca-file={p('ca.crt')}",
        f"--cluster-signing-cert-file={p('ca.crt')}", f"--cluster-signing-key-file={p('ca.key')}",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--use-service-account-credentials=false",
        "--concurrent-job-syncs=5", "--v=1",
    ])
    start("kube-scheduler", [str(bin_dir / "kube-scheduler"), *common, f"--secure-port={SCHEDULER_PORT}", "--v=1"])
    # With a real node, kwok must leave the kubelet's node alone: it manages its own nodes only.
    manage = "--manage-nodes-with-label-selector=type=kwok" if REAL_NODE else "--manage-all-nodes=true"
    start("kwok", [str(bin_dir / "kwok"), f"--kubeconfig={KUBECONFIG}", manage,
                   f"--config={ROOT / 'hack/kwok/stages.yaml'}", "--cidr=10.244.0.1/16", "--node-ip=10.0.0.1",
                   f"--server-address=127.0.0.1:{KWOK_PORT}",
                   # Leases keep nodes Ready between the (slow) status heartbeats, as kubelets do.
                   "--node-lease-duration-seconds=40"])
    kubectl("apply", "-f", "-", input_=yaml.safe_dump_all(NODES))
    wait_for("nodes Ready", nodes_ready, 60)
    wait_for("the default ServiceAccount", lambda: kubectl("get", "sa", "default", check=False).returncode == 0, 60)
    if not REAL_NODE:
        start_podrunner()
    start_provisioner()
    if REAL_NODE:
        import realnode
        realnode.up()
    log(f"ready in {time.monotonic() - t0:.1f}s; export KUBECONFIG={KUBECONFIG}")


def start_podrunner() -> None:
    """Pods bound to LOCAL_NODE run for real, as local processes; `down` stops it by its pidfile."""
    python = ROOT / ".venv/bin/python"
    # A second cluster on this machine needs its own range: each runner removes its lo route on exit.
    cidr = [f"--pod-cidr={os.environ['ACGS_PODRUNNER_CIDR']}"] if os.environ.get("ACGS_PODRUNNER_CIDR") else []
    hack = str(ROOT / "hack")
    path = os.pathsep.join(p for p in (hack, os.environ.get("PYTHONPATH")) if p)
    start("podrunner", [str(python if python.exists() else sys.executable), "-m", "podrunner",
                        f"--kubeconfig={KUBECONFIG}", f"--node={LOCAL_NODE}", f"--state-dir={STATE}", *cidr],
          env={**os.environ, "PYTHONPATH": path})


def start_provisioner() -> None:
    """PVCs of the default StorageClass get a hostPath PV, as a real provisioner would give them one."""
    python = ROOT / ".venv/bin/python"
    start("provisioner", [str(python if python.exists() else sys.executable), str(ROOT / "hack/provisioner.py"),
                          f"--kubeconfig={KUBECONFIG}", f"--state-dir={STATE}"])


def nodes_ready() -> bool:
    out = kubectl("get", "nodes", "-o", "json", check=False)
    if out.returncode:
        return False
    items = json.loads(out.stdout)["items"]
    ready = [n for n in items for c in n.get("status", {}).get("conditions", [])
             if c["type"] == "Ready" and c["status"] == "True"]
    return len(ready) >= len(NODES)


def stop_pidfile(pidfile: Path, grace: float = 10.0) -> None:
    try:
        pid = int(pidfile.read_text())
    except (FileNotFoundError, ValueError):
        pidfile.unlink(missing_ok=True)
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                    break
            except (ProcessLookupError, FileNotFoundError):
                break
            time.sleep(0.1)
        else:
            continue
        break
    pidfile.unlink(missing_ok=True)


def down(keep_data: bool = False) -> None:
    # Everything started against this cluster (operator, pod runner) leaves a pidfile here too.
    import realnode  # its containers, mounts, bridge and nftables tables go first
    realnode.down()
    extra = sorted(p for p in PIDS.glob("*.pid") if p.stem not in COMPONENTS) if PIDS.exists() else []
    for pidfile in extra + [PIDS / f"{c}.pid" for c in reversed(COMPONENTS)]:
        stop_pidfile(pidfile)
    if not keep_data:
        subprocess.run(["rm", "-rf", str(STATE / "etcd")], check=True)
    log("stopped")


def restart(component: str) -> float:
    """Stop one control-plane component (SIGTERM, then SIGKILL) and bring the cluster back up;
    returns the seconds it was away. For fault tests: etcd or kube-apiserver restarted under a
    running operator."""
    if component not in COMPONENTS:
        raise SystemExit(f"[localcluster] restart {component!r}: expected one of {', '.join(COMPONENTS)}")
    t0 = time.monotonic()
    stop_pidfile(PIDS / f"{component}.pid")
    up()  # starts what is not running; the apiserver reconnects to a restarted etcd by itself
    return time.monotonic() - t0


def status() -> int:
    running = {c: pid_of(c) for c in COMPONENTS}
    for c, pid in running.items():
        print(f"{c:<26}{'running pid ' + str(pid) if pid else 'stopped'}")
    print(f"{'apiserver /readyz':<26}{'ok' if (PKI / 'ca.crt').exists() and api_ready() else 'not ready'}")
    return 0 if all(running.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "build", "restart"])
    parser.add_argument("component", nargs="?", help="restart: etcd, kube-apiserver, ...")
    parser.add_argument("--keep-data", action="store_true", help="down: keep etcd's data for the next up")
    args = parser.parse_args()
    if args.command == "up":
        up()
    elif args.command == "down":
        down(args.keep_data)
    elif args.command == "restart":
        restart(args.component or "kube-apiserver")
    elif args.command == "build":
        print(binaries())
    else:
        return status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
