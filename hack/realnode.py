#!/usr/bin/env python3
"""A real node for the local control plane: kubelet + containerd + runc on this machine.

Started by `hack/localcluster.py up` when ACGS_REAL_NODE=1 (`make cluster-up REAL_NODE=1`) and
stopped by `down`. Pods scheduled to it run as real containers from images built by
hack/build-images.sh and imported into containerd (no registry). Pod network: a bridge on
198.19.0.0/16 (RFC 2544 benchmarking range, on no real network; never private address space),
Services through kube-proxy (nftables), cluster DNS from CoreDNS running as a pod, NetworkPolicies
enforced by kube-network-policies (nftables + NFQUEUE). `nvidia.com/gpu` is advertised as an
extended resource so GPU-requesting pods schedule: the GPUs are fake, pods see no device.

    python hack/realnode.py up|down|status    (normally through localcluster.py)
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import localcluster as lc  # noqa: E402
from pki import KeyPair, issue  # noqa: E402

NODE_NAME = "acgs-real-0"
POD_CIDR = "198.19.0.0/16"
NODE_IP = "198.19.0.1"  # the bridge's address: the node's InternalIP (kubectl logs/exec reach it)
BRIDGE = "acgs0"
FAKE_GPUS = int(os.environ.get("ACGS_REAL_NODE_GPUS", "4"))
NODE = lc.STATE / "node"
SOCK = NODE / "containerd.sock"
PAUSE_IMAGE = "localhost/acgs-pause:1"
COREDNS_IMAGE = f"localhost/acgs-coredns:{os.environ.get('COREDNS_VERSION', 'v1.15.0')}"  # = build-node.sh
BASE_IMAGE = os.environ.get("ACGS_BASE_IMAGE", "localhost/acgs-base:bookworm")
# Images of the product loaded when present in podman's store (hack/build-images.sh). The trainer
# and server images (PyPI's CUDA torch, ~5.6 GB each, twice that once unpacked in containerd) only
# on request: ACGS_NODE_IMAGES="ghcr.io/acgs/operator:0.1.0 ghcr.io/acgs/trainer:0.1.0 ...".
PRODUCT_IMAGES = tuple(os.environ.get("ACGS_NODE_IMAGES", "ghcr.io/acgs/operator:0.1.0").split())
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "kube-network-policies")
KUBELET_PORT = int(os.environ.get("ACGS_KUBELET_PORT", "10250"))
PORTS = {"kubelet-healthz": 10248, "proxy-healthz": 10256, "proxy-metrics": 10249, "knp-metrics": 9080}
PORTS = {k: int(os.environ.get("ACGS_" + k.upper().replace("-", "_") + "_PORT", v)) for k, v in PORTS.items()}
# Host sysctls the node changes: kube-proxy and the bridge need forwarding and bridge netfilter;
# the kubelet sets its "kernel tunables" (overcommit, panic on oops, ...) when it starts. This is
# a shared machine: all are saved first, the kubelet's are restored as soon as the node is Ready
# (it checks them only at start) and the rest by `down`.
KUBELET_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                   "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")
NETWORK_SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")
SAVED_SYSCTLS = NODE / "sysctls.saved.json"
NFT_TABLES = (("ip", "kube-proxy"), ("ip6", "kube-proxy"), ("inet", "kube-network-policies"))
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(lc.ROOT / "hack/images/containers.conf")}


def dns_service_ip() -> str:
    return str(ipaddress.ip_network(lc.SERVICE_CIDR)[10])


def sh(*argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if check and proc.returncode:
        raise SystemExit(f"[realnode] {' '.join(argv)} failed: {proc.stderr.strip()[-800:]}")
    return proc


def node_binaries() -> Path:
    out = sh("bash", str(lc.ROOT / "hack/build-node.sh")).stdout.strip().splitlines()
    return Path(out[-1])


def ensure_bridge() -> None:
    """The bridge exists before the CNI plugin's first pod so the node's address is there at start."""
    if sh("ip", "link", "show", BRIDGE, check=False).returncode:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
    if NODE_IP not in sh("ip", "-4", "-o", "addr", "show", "dev", BRIDGE).stdout:
        sh("ip", "addr", "add", f"{NODE_IP}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    # kube-proxy's DNAT and the policies must see traffic between pods on the same bridge, and a
    # Service's backend may sit on the same bridge as its client: both need forwarding.
    for name in NETWORK_SYSCTLS:
        Path("/proc/sys", name).write_text("1\n")


def save_sysctls() -> None:
    if not SAVED_SYSCTLS.exists():
        SAVED_SYSCTLS.write_text(json.dumps(
            {n: Path("/proc/sys", n).read_text().strip() for n in (*KUBELET_SYSCTLS, *NETWORK_SYSCTLS)}))


def restore_sysctls(names: tuple[str, ...]) -> None:
    if not SAVED_SYSCTLS.exists():
        return
    for name, value in json.loads(SAVED_SYSCTLS.read_text()).items():
        if name in names and Path("/proc/sys", name).read_text().strip() != value:
            Path("/proc/sys", name).write_text(value + "\n")


def write_configs() -> None:
    (NODE / "cni/net.d").mkdir(parents=True, exist_ok=True)
    (NODE / "cni/net.d/10-acgs.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "acgs-pods",
        "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                     "hairpinMode": True,
                     "ipam": {"type": "host-local", "dataDir": str(NODE / "cni/ipam"),
                              "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                              "routes": [{"dst": "0.0.0.0/0"}]}}],
    }, indent=1))
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    (NODE / "containerd.toml").write_text(f"""version = 2
root = "{NODE / 'containerd/root'}"
state = "{NODE / 'containerd/state'}"
[grpc]
  address = "{SOCK}"
[ttrpc]
  address = "{SOCK}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{NODE / 'containerd/opt'}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "/usr/sbin/runc"
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{NODE / 'cni/net.d'}"
""")
    pki = lc.PKI
    (NODE / "kubelet.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": NODE_IP, "port": KUBELET_PORT, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": PORTS["kubelet-healthz"],
        "tlsCertFile": str(pki / "kubelet.crt"), "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        # Only the apiserver (client cert from the cluster CA) talks to the kubelet.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "AlwaysAllow"},
        # This machine kind: cgroup v1/v2 hybrid, no systemd, swap allowed, no QoS cgroups.
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
        "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
        # Two shared cores: pods request little CPU (tests/cluster RUNNER_CPU) and are not throttled to it.
        "cpuCFSQuota": False,
        "containerRuntimeEndpoint": f"unix://{SOCK}",
        "clusterDNS": [dns_service_ip()], "clusterDomain": "cluster.local",
        "podLogsDir": str(NODE / "pod-logs"),
        # A shared disk: never evict or garbage-collect images because other people filled it.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "maxPods": 60, "serializeImagePulls": False, "registerNode": True,
        "shutdownGracePeriod": "0s", "protectKernelDefaults": False,
        "allowedUnsafeSysctls": [],
    }))
    node_kubeconfig("kubelet", f"system:node:{NODE_NAME}", "system:nodes")


def node_kubeconfig(name: str, user: str, group: str) -> Path:
    """A kubeconfig with its own client identity (NodeRestriction applies to the kubelet's)."""
    path = NODE / f"{name}.kubeconfig"
    if path.exists():
        return path
    ca = KeyPair((lc.PKI / "ca.crt").read_bytes(), (lc.PKI / "ca.key").read_bytes())
    cert = issue(ca, user, org=group, client=True)
    cert.write(NODE / f"{name}-client.crt", NODE / f"{name}-client.key")
    config = yaml.safe_load(lc.KUBECONFIG.read_text())
    config["users"] = [{"name": "admin", "user": {"client-certificate": str(NODE / f"{name}-client.crt"),
                                                  "client-key": str(NODE / f"{name}-client.key")}}]
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def ensure_serving_cert() -> None:
    if (lc.PKI / "kubelet.crt").exists():
        return
    ca = KeyPair((lc.PKI / "ca.crt").read_bytes(), (lc.PKI / "ca.key").read_bytes())
    issue(ca, NODE_NAME, server=True, dns=(NODE_NAME,), ips=(NODE_IP,)).write(
        lc.PKI / "kubelet.crt", lc.PKI / "kubelet.key")


def ctr(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return sh("ctr", f"--address={SOCK}", "--namespace=k8s.io", *args, **kw)


def podman(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return sh("podman", *args, env=PODMAN_ENV, **kw)


def build_small_images(bins: Path) -> None:
    """The sandbox (pause) and CoreDNS images: one static binary each, FROM scratch."""
    for image, binary in ((PAUSE_IMAGE, "pause"), (COREDNS_IMAGE, "coredns")):
        if podman("image", "exists", image, check=False).returncode == 0:
            continue
        ctx = NODE / f"ctx-{binary}"
        ctx.mkdir(parents=True, exist_ok=True)
        (ctx / binary).write_bytes((bins / binary).read_bytes())
        (ctx / binary).chmod(0o755)
        (ctx / "Containerfile").write_text(
            f"FROM scratch\nCOPY {binary} /{binary}\nUSER 65532:65532\nENTRYPOINT [\"/{binary}\"]\n")
        podman("build", "-q", "-t", image, str(ctx))


ID_LABEL = "acgs.io/podman-image-id"


def discard_layers(image: str) -> None:
    """Once unpacked into snapshots, an image's layer blobs only double its size on disk (5.6 GB
    for the ML images): dropped, as the CRI's discard_unpacked_layers does for pulled images."""
    digest = next(f[2] for f in map(str.split, ctr("images", "ls").stdout.splitlines()) if f[0] == image)
    for layer in json.loads(ctr("content", "get", digest).stdout).get("layers", []):
        ctr("content", "rm", layer["digest"], check=False)


def load_images() -> list[str]:
    """podman's images into containerd's k8s.io namespace (no registry); a kept one again once rebuilt."""
    have = {f[0]: dict(kv.split("=", 1) for kv in f[-1].split(",") if "=" in kv).get(ID_LABEL)
            for f in map(str.split, ctr("images", "ls").stdout.splitlines()[1:])}
    loaded = []
    for image in (PAUSE_IMAGE, COREDNS_IMAGE, BASE_IMAGE, *PRODUCT_IMAGES):
        if podman("image", "exists", image, check=False).returncode:
            lc.log(f"real node: {image} is not built (hack/build-images.sh); not loaded")
            continue
        image_id = podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        if have.get(image) == image_id:
            continue
        t0 = time.monotonic()
        save = subprocess.Popen(["podman", "save", "--format=docker-archive", image],
                                stdout=subprocess.PIPE, env=PODMAN_ENV)
        ctr("images", "import", "-", stdin=save.stdout)
        save.wait()
        ctr("images", "label", image, f"{ID_LABEL}={image_id}")
        discard_layers(image)
        loaded.append(image)
        lc.log(f"real node: loaded {image} into containerd in {time.monotonic() - t0:.0f}s")
    return loaded


def up() -> None:
    t0 = time.monotonic()
    bins = node_binaries()
    NODE.mkdir(parents=True, exist_ok=True)
    save_sysctls()
    ensure_bridge()
    ensure_serving_cert()
    write_configs()
    lc.kubectl("apply", "-f", str(lc.ROOT / "hack/node/rbac.yaml"))
    lc.start("containerd", ["containerd", f"--config={NODE / 'containerd.toml'}"])
    lc.wait_for("containerd", lambda: lc.alive("containerd") and ctr("version", check=False).returncode == 0, 60)
    build_small_images(bins)
    load_images()
    lc.start("kubelet", [str(bins / "kubelet"), f"--config={NODE / 'kubelet.yaml'}",
                         f"--kubeconfig={NODE / 'kubelet.kubeconfig'}", f"--root-dir={NODE / 'kubelet'}",
                         f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
                         # acgs.io/local-runner: where the e2e tests and the demo place the pods
                         # that must really run (the pod runner's node is not registered then).
                         "--node-labels=acgs.io/real-node=true,acgs.io/local-runner=true,"
                         "nvidia.com/gpu.present=true", "--v=1"],
             # Without iptables on its PATH the kubelet leaves the host's iptables tables alone
             # (it would add KUBE-FIREWALL to INPUT/OUTPUT); nothing here uses iptables.
             env={**os.environ, "PATH": "/usr/local/bin:/usr/bin:/bin"})
    lc.start("kube-proxy", [str(bins / "kube-proxy"), f"--kubeconfig={lc.KUBECONFIG}", "--proxy-mode=nftables",
                            f"--hostname-override={NODE_NAME}", f"--cluster-cidr={POD_CIDR}",
                            f"--healthz-bind-address=127.0.0.1:{PORTS['proxy-healthz']}",
                            f"--metrics-bind-address=127.0.0.1:{PORTS['proxy-metrics']}",
                            # leave the host's conntrack sysctls alone (shared machine)
                            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
                            "--conntrack-tcp-timeout-close-wait=0", "--v=1"])
    lc.start("kube-network-policies", [
        str(bins / "kube-network-policies"), f"--hostname-override={NODE_NAME}",
        f"--metrics-bind-address=127.0.0.1:{PORTS['knp-metrics']}", "--disable-nri",
        "--netfilter-bug-1766-fix=false", "--v=1"], env={**os.environ, "KUBECONFIG": str(lc.KUBECONFIG)})
    lc.wait_for(f"node {NODE_NAME} Ready", lambda: all(map(lc.alive, COMPONENTS)) and node_ready(), 120)
    restore_sysctls(KUBELET_SYSCTLS)
    advertise_fake_gpus()
    lc.kubectl("apply", "-f", "-", input_=coredns_manifest())
    lc.wait_for("CoreDNS ready", coredns_ready, 120)
    lc.log(f"real node {NODE_NAME} ready in {time.monotonic() - t0:.1f}s")


def node_ready() -> bool:
    out = lc.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
    if out.returncode:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in json.loads(out.stdout)["status"]["conditions"])


def advertise_fake_gpus() -> None:
    """Extended resources are advertised by patching the node's status (kubelet keeps them)."""
    patch = json.dumps([{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(FAKE_GPUS)}])
    lc.kubectl("patch", "node", NODE_NAME, "--subresource=status", "--type=json", "-p", patch)


def coredns_ready() -> bool:
    out = lc.kubectl("-n", "kube-system", "get", "deploy", "coredns", "-o", "jsonpath={.status.readyReplicas}",
                     check=False)
    return out.returncode == 0 and out.stdout.strip() == "1"


def coredns_manifest() -> str:
    text = (lc.ROOT / "hack/node/coredns.yaml").read_text()
    return text.replace("@DNS_IP@", dns_service_ip()).replace("@IMAGE@", COREDNS_IMAGE).replace("@NODE@", NODE_NAME)


def kill_containers() -> None:
    """Containers outlive containerd (their shims keep running): stop every task first."""
    if not SOCK.exists() or ctr("version", check=False).returncode:
        return
    for task in ctr("tasks", "ls", "-q", check=False).stdout.split():
        ctr("tasks", "kill", "--signal=SIGKILL", task, check=False)
    time.sleep(1)
    for task in ctr("tasks", "ls", "-q", check=False).stdout.split():
        ctr("tasks", "delete", "--force", task, check=False)
    for container in ctr("containers", "ls", "-q", check=False).stdout.split():
        ctr("containers", "delete", container, check=False)


def remove_kubelet_iptables_chains() -> None:
    """What a kubelet that found iptables adds (older runs of this script did): its chains only."""
    for tool in ("iptables", "ip6tables"):
        for chain in ("INPUT", "OUTPUT"):
            while sh(tool, "-w", "-D", chain, "-j", "KUBE-FIREWALL", check=False).returncode == 0:
                pass
        for table, chain in (("filter", "KUBE-FIREWALL"), ("filter", "KUBE-KUBELET-CANARY"),
                             ("nat", "KUBE-KUBELET-CANARY"), ("mangle", "KUBE-KUBELET-CANARY"),
                             ("mangle", "KUBE-IPTABLES-HINT")):
            sh(tool, "-w", "-t", table, "-F", chain, check=False)
            sh(tool, "-w", "-t", table, "-X", chain, check=False)
    # Tables left holding nothing but empty base chains (iptables-nft made them for those chains).
    for family in ("ip", "ip6"):
        for table in ("filter", "nat", "mangle"):
            listing = sh("nft", "list", "table", family, table, check=False).stdout.splitlines()
            if listing and all(line.strip().startswith(("table ", "chain ", "type ", "}", "#")) or not line.strip()
                               for line in listing):
                sh("nft", "delete", "table", family, table, check=False)


def unmount_under(root: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(str(root) + "/")), key=len, reverse=True):
        sh("umount", "-l", point, check=False)


def down() -> None:
    if not NODE.exists():
        return
    lc.stop_pidfile(lc.PIDS / "kubelet.pid")
    kill_containers()
    for name in ("kube-network-policies", "kube-proxy", "containerd"):
        lc.stop_pidfile(lc.PIDS / f"{name}.pid")
    for family, table in NFT_TABLES:
        sh("nft", "delete", "table", family, table, check=False)
    remove_kubelet_iptables_chains()
    # Sandboxes' network namespaces (containerd names them cni-*; no other CNI user on this machine
    # shares this state directory's bridge) and the bridge with its veths.
    for ns in Path("/var/run/netns").glob("cni-*") if Path("/var/run/netns").exists() else []:
        if sh("ip", "-n", ns.name, "-o", "addr", check=False).stdout.count("198.19."):
            sh("umount", str(ns), check=False)
            ns.unlink(missing_ok=True)
    sh("ip", "link", "del", BRIDGE, check=False)
    restore_sysctls((*KUBELET_SYSCTLS, *NETWORK_SYSCTLS))
    SAVED_SYSCTLS.unlink(missing_ok=True)
    unmount_under(NODE)
    # containerd's images and snapshots (GBs with the ML images) on a shared disk: the next `up`
    # imports again from podman's store, which stays the cache.
    if not os.environ.get("ACGS_KEEP_NODE_IMAGES"):
        for state in ("containerd", "kubelet", "pod-logs", "cni/ipam"):
            sh("rm", "-rf", "--one-file-system", str(NODE / state), check=False)
    lc.log("real node stopped")


def status() -> int:
    running = {c: lc.pid_of(c) for c in COMPONENTS}
    print("\n".join(f"{c:<26}{'running pid ' + str(pid) if pid else 'stopped'}" for c, pid in running.items()))
    return 0 if all(running.values()) else 1


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "status"
    commands: dict[str, Callable[[], object]] = {"up": up, "down": down, "status": status}
    result = commands[cmd]()
    sys.exit(result if isinstance(result, int) else 0)
