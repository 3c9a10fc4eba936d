#!/usr/bin/env python3
"""Kueue on the local control plane: the controller manager built from its Go module
(hack/build-kueue.sh), its CRDs of the same version, its webhooks and a GPU queue.

    python hack/kueue.py up [--namespace NS]   # build (cached), install, start, queue objects
    python hack/kueue.py queue NS              # a LocalQueue `gpu-queue` in NS (opts NS in)
    python hack/kueue.py down                  # stop it, remove its webhooks (CRDs stay)
    python hack/kueue.py status

Certificates: Kueue's internalCertManagement signs for `<service>.<namespace>.svc`, a name this
loopback apiserver cannot reach, so Kueue runs with it disabled and gets certificates the way the
operator does (hack/pki.py, for 127.0.0.1); its webhooks are registered by URL. With it disabled
Kueue also reads a metrics certificate from the fixed path /etc/kueue/metrics/certs: it sees one
there through an overlay of /etc in a private mount namespace (root only), the host's /etc is
untouched. Only the batch/job integration is enabled, and its Job webhooks apply to namespaces
labelled `acgs.io/kueue=enabled` only, so a stopped Kueue never blocks Jobs elsewhere.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import localcluster  # noqa: E402
from localcluster import LOGS, ROOT, STATE, kubectl, log, pid_of, start, stop_pidfile  # noqa: E402
from pki import webhook_certs  # noqa: E402

KUEUE_DIR = STATE / "kueue"
CERTS = KUEUE_DIR / "certs"
WEBHOOK_PORT = int(os.environ.get("ACGS_KUEUE_WEBHOOK_PORT", "9543"))
HEALTH_PORT = int(os.environ.get("ACGS_KUEUE_HEALTH_PORT", "9581"))
METRICS_PORT = int(os.environ.get("ACGS_KUEUE_METRICS_PORT", "9582"))
VISIBILITY_PORT = int(os.environ.get("ACGS_KUEUE_VISIBILITY_PORT", "9583"))
NAMESPACE = "kueue-system"
OPT_IN_LABEL = ("acgs.io/kueue", "enabled")
WEBHOOK_GROUPS = {"batch", "kueue.x-k8s.io"}  # the Job integration and Kueue's own kinds
WEBHOOK_CONFIG_NAME = "acgs-kueue"

FLAVOR = "gpu"
CLUSTER_QUEUE = "acgs-gpu"
LOCAL_QUEUE = "gpu-queue"
GPU_QUOTA = int(os.environ.get("ACGS_KUEUE_GPU_QUOTA", "4"))


def build() -> Path:
    """The versioned cache directory: `kueue` and `crd/*.yaml`."""
    out = subprocess.run(["bash", str(ROOT / "hack/build-kueue.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()
    return Path(out[-1])


def install_crds(bin_dir: Path) -> None:
    crds = sorted((bin_dir / "crd").glob("*.yaml"))
    kubectl("apply", "--server-side", "--force-conflicts", *[f"--filename={p}" for p in crds])
    names = [f"crd/{yaml.safe_load(p.read_text())['metadata']['name']}" for p in crds]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    localcluster.wait_for("Kueue's resources served",
                          lambda: kubectl("get", "resourceflavors,clusterqueues", check=False).returncode == 0, 30)


def webhook_configurations(manifests: str, ca_bundle: bytes) -> list[dict[str, Any]]:
    """Kueue's own webhook manifests (config/components/webhook) for Jobs and Kueue's kinds,
    pointed at the local process by URL; the Job webhooks only in opted-in namespaces."""
    import base64

    out = []
    for doc in yaml.safe_load_all(manifests):
        if not doc:
            continue
        hooks = []
        for hook in doc["webhooks"]:
            groups = {g for rule in hook.get("rules", []) for g in rule.get("apiGroups", [])}
            if not groups or not groups <= WEBHOOK_GROUPS:
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{WEBHOOK_PORT}{path}",
                                    "caBundle": base64.b64encode(ca_bundle).decode()}
            if "batch" in groups:
                hook["namespaceSelector"] = {"matchLabels": dict([OPT_IN_LABEL])}
            hooks.append(hook)
        kind = doc["kind"]
        suffix = "mutating" if kind.startswith("Mutating") else "validating"
        out.append({"apiVersion": doc["apiVersion"], "kind": kind,
                    "metadata": {"name": f"{WEBHOOK_CONFIG_NAME}-{suffix}"}, "webhooks": hooks})
    return out


def configuration() -> dict[str, Any]:
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{HEALTH_PORT}"},
        "metrics": {"bindAddress": f"127.0.0.1:{METRICS_PORT}"},
        "webhook": {"host": "127.0.0.1", "port": WEBHOOK_PORT, "certDir": str(CERTS)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "integrations": {"frameworks": ["batch/job"]},
        # The on-demand visibility API is an aggregated apiserver with its certificate at a fixed
        # /visibility path; nothing here queries it (kubectl reads Workloads and queues directly).
        "featureGates": {"VisibilityOnDemand": False},
    }


def healthy() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HEALTH_PORT}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except Exception:
        return False


def start_kueue(bin_dir: Path) -> None:
    if pid_of("kueue") and healthy():
        return
    stop_pidfile(localcluster.PIDS / "kueue.pid")
    if os.geteuid() != 0:
        raise SystemExit("[kueue] needs root: Kueue reads its metrics certificate from /etc/kueue/metrics/certs, "
                         "which it is shown through an overlay of /etc in a private mount namespace")
    certs = webhook_certs(CERTS)
    upper, work = KUEUE_DIR / "etc-upper", KUEUE_DIR / "etc-work"
    metrics = upper / "kueue/metrics/certs"
    metrics.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        (metrics / name).write_bytes((certs / name).read_bytes())
    config = KUEUE_DIR / "config.yaml"
    config.write_text(yaml.safe_dump(configuration()))
    kueue = [str(bin_dir / "kueue"), f"--config={config}", f"--visibility-server-port={VISIBILITY_PORT}",
             "--zap-log-level=2"]
    script = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc && "
              f"exec {shlex.join(kueue)}")
    start("kueue", ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
          env={**os.environ, "KUBECONFIG": str(localcluster.KUBECONFIG)})
    localcluster.wait_for("Kueue /readyz", lambda: localcluster.alive("kueue") and healthy(), 90)


def queue_objects(namespace: str | None) -> list[dict[str, Any]]:
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": FLAVOR},
              # The GPU nodes (hack/localcluster.py NODES): Kueue adds this to admitted pods' nodeSelector.
              "spec": {"nodeLabels": {"nvidia.com/gpu.present": "true"}}}
    cluster_queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": CLUSTER_QUEUE},
        "spec": {"namespaceSelector": {}, "queueingStrategy": "BestEffortFIFO", "resourceGroups": [{
            "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
            "flavors": [{"name": FLAVOR, "resources": [
                {"name": "cpu", "nominalQuota": "64"}, {"name": "memory", "nominalQuota": "256Gi"},
                {"name": "nvidia.com/gpu", "nominalQuota": str(GPU_QUOTA)}]}]}]},
    }
    objects = [flavor, cluster_queue]
    if namespace:
        objects.append(local_queue(namespace))
    return objects


def local_queue(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
            "metadata": {"name": LOCAL_QUEUE, "namespace": namespace}, "spec": {"clusterQueue": CLUSTER_QUEUE}}


def add_queue(namespace: str) -> None:
    """The LocalQueue in `namespace`, which is created if missing and opted in to Kueue's Job webhooks."""
    if kubectl("get", "namespace", namespace, check=False).returncode:
        kubectl("create", "namespace", namespace)
    kubectl("label", "--overwrite", "namespace", namespace, "=".join(OPT_IN_LABEL))
    kubectl("apply", "-f", "-", input_=yaml.safe_dump(local_queue(namespace)))


def up(namespace: str | None = None) -> None:
    t0 = time.monotonic()
    bin_dir = build()
    if not localcluster.api_ready():
        localcluster.up()
    install_crds(bin_dir)
    kubectl("apply", "-f", "-", input_=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": NAMESPACE}}))
    start_kueue(bin_dir)
    manifests = (bin_dir / "webhook-manifests.yaml").read_text()
    ca = (CERTS / "ca.crt").read_bytes()
    kubectl("apply", "-f", "-", input_=yaml.safe_dump_all(webhook_configurations(manifests, ca)))
    # Kueue's own validating webhooks now answer for its kinds: retry until the first apply passes them.
    body = yaml.safe_dump_all(queue_objects(None))
    localcluster.wait_for("the ResourceFlavor and ClusterQueue",
                          lambda: kubectl("apply", "-f", "-", input_=body, check=False).returncode == 0, 30)
    if namespace:
        add_queue(namespace)
    if pid_of("operator"):
        # The operator scans CRDs once, at start: restarted, it watches Kueue's Workloads too.
        import install

        install.start_operator(restart=True)
    log(f"Kueue ready in {time.monotonic() - t0:.1f}s: ClusterQueue {CLUSTER_QUEUE} ({GPU_QUOTA} GPUs)"
        + (f", LocalQueue {namespace}/{LOCAL_QUEUE}" if namespace else "") + f"; log: {LOGS / 'kueue.log'}")


def down() -> None:
    for suffix in ("mutating", "validating"):
        kind = f"{suffix}webhookconfiguration"
        kubectl("delete", kind, f"{WEBHOOK_CONFIG_NAME}-{suffix}", "--ignore-not-found", check=False)
    stop_pidfile(localcluster.PIDS / "kueue.pid")
    log("Kueue stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "queue", "build"])
    parser.add_argument("namespace", nargs="?", help="queue: the namespace of the LocalQueue")
    parser.add_argument("--namespace", dest="ns_option", help="up: also a LocalQueue in this namespace")
    args = parser.parse_args()
    if args.command == "up":
        up(args.ns_option)
    elif args.command == "queue":
        if not args.namespace:
            parser.error("queue: a namespace is required")
        add_queue(args.namespace)
    elif args.command == "down":
        down()
    elif args.command == "build":
        print(build())
    else:
        running = bool(pid_of("kueue")) and healthy()
        print(f"kueue {'running pid ' + str(pid_of('kueue')) if running else 'stopped'}")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
