#!/usr/bin/env python3
"""A minimal kubelet for the local control plane: runs the pods bound to one node as local processes.

No container engine exists on these machines, so pods that must really run (the trainer Job's pod,
the model server's Deployment pods) are bound to the kwok node `acgs-local-0`, which kwok keeps
alive but whose pods it leaves alone. This runner watches those pods and, like a kubelet, gives each
a pod IP (from 198.18.0.0/24, routed to lo), runs its init containers then containers (`command` + `args`, env, volumes
bind-mounted in a private mount namespace), probes them, restarts them per restartPolicy, and
reports it all in the pod's status, so the Job, Deployment and EndpointSlice controllers do the rest.

Processes run as root whatever the pod's securityContext says (restricted Pod Security admits the
spec; nothing here enforces it). Logs: <state-dir>/logs/pods/<namespace>_<pod>_<container>.log.

    PYTHONPATH=hack python -m podrunner --kubeconfig .cluster/kubeconfig [--node acgs-local-0] [--state-dir .cluster]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from .env import decode_data
from .pod import PodWorker, delete_now
from .volumes import remove_pod_dir

log = logging.getLogger("podrunner")
ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("Succeeded", "Failed")
DEFAULT_POD_CIDR = "198.18.0.0/24"  # RFC 2544 benchmarking: on no real network, unlike 10/8
SHUTDOWN_GRACE = 3.0  # localcluster's `down` waits 10 s before SIGKILL: stay well inside it


def _raw(response: Any) -> bytes:
    """The body of a `_preload_content=False` call (an HTTP response, whatever the stubs say)."""
    data: bytes = response.data
    return data


class Shutdown(BaseException):
    """Raised by the SIGTERM/SIGINT handler; a BaseException so no `except Exception` swallows it."""


class IPPool:
    """One address per live pod from `network`, which must be local to this host. EndpointSlices
    refuse loopback addresses, so pods get addresses from a benchmarking range (RFC 2544) routed
    to `lo` as a whole (`ip route add local`): each pod's server binds its own address and the same
    port, as pods on a real node do, and the cluster's Services list them."""

    def __init__(self, network: ipaddress.IPv4Network) -> None:
        self.network = network
        self._by_uid: dict[str, str] = {}
        self._lock = threading.Lock()

    def allocate(self, uid: str, prefer: str | None) -> str:
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            used = set(self._by_uid.values())
            free = [str(ip) for ip in self.network.hosts() if str(ip) not in used and ip.packed[-1] != 1]
            # A pod the runner saw before it restarted keeps its address (a pod IP never changes).
            ip = prefer if prefer in free else free[0]
            self._by_uid[uid] = ip
            return ip

    def release(self, uid: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)


def route_pod_network(cidr: str) -> ipaddress.IPv4Network:
    """Make `cidr` local (every address answers on lo, like 127/8); without CAP_NET_ADMIN fall back
    to loopback addresses, which work for direct connections but not for EndpointSlices."""
    network = ipaddress.IPv4Network(cidr)
    if network.is_loopback:
        return network
    proc = subprocess.run(["ip", "route", "replace", "local", str(network), "dev", "lo"],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return network
    log.warning("cannot route %s to lo (%s); using 127.0.0.0/24: EndpointSlices will reject pod IPs",
                network, proc.stderr.strip())
    return ipaddress.IPv4Network("127.0.0.0/24")


def unroute_pod_network(network: ipaddress.IPv4Network) -> None:
    if not network.is_loopback:
        subprocess.run(["ip", "route", "del", "local", str(network), "dev", "lo"], capture_output=True)


class Runner:
    def __init__(self, api: client.CoreV1Api, node: str, state_dir: Path, network: ipaddress.IPv4Network) -> None:
        self.api, self.node, self.state_dir = api, node, state_dir
        self.workers: dict[str, PodWorker] = {}
        self.ips = IPPool(network)
        self._lock = threading.Lock()
        self.allocatable = self._node_allocatable()

    def _node_allocatable(self) -> dict[str, str]:
        try:
            node = json.loads(_raw(self.api.read_node(self.node, _preload_content=False)))
            return dict(node.get("status", {}).get("allocatable") or {})
        except Exception as err:
            log.warning("cannot read node %s (%s); resourceFieldRef limits default to 0", self.node, err)
            return {}

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        read = self.api.read_namespaced_config_map if kind == "configmap" else self.api.read_namespaced_secret
        try:
            return decode_data(kind, json.loads(_raw(read(name, namespace, _preload_content=False))))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    # -- events -----------------------------------------------------------------------------------
    def handle(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        with self._lock:
            worker = self.workers.get(uid)
        deleting = kind == "DELETED" or bool(meta.get("deletionTimestamp"))
        if deleting:
            grace = meta.get("deletionGracePeriodSeconds", pod["spec"].get("terminationGracePeriodSeconds", 30))
            if worker is not None and not worker.deleted:
                worker.request_stop(float(grace), deleted=True)
                threading.Thread(target=self._after_delete, args=(worker, kind == "DELETED"),
                                 name=f"reap-{worker.key}", daemon=True).start()
            elif worker is None and kind != "DELETED":
                remove_pod_dir(self.state_dir, uid)
                delete_now(self.api, pod)
            return
        if worker is not None:
            worker.reassert(pod)
            return
        if (pod.get("status") or {}).get("phase") not in TERMINAL:
            ip = self.ips.allocate(uid, (pod.get("status") or {}).get("podIP"))
            worker = PodWorker(self.api, pod, self.state_dir, ip, self.allocatable, self.lookup)
            with self._lock:
                self.workers[uid] = worker
            worker.start()
            threading.Thread(target=self._release_when_done, args=(worker,), daemon=True).start()

    def _release_when_done(self, worker: PodWorker) -> None:
        # A terminal pod keeps no address, as a kubelet tears down the sandbox; its worker stays
        # registered so that later MODIFIED events do not run it again.
        worker.join()
        self.ips.release(worker.pod["metadata"]["uid"])

    def _after_delete(self, worker: PodWorker, already_gone: bool) -> None:
        worker.join()
        uid = worker.pod["metadata"]["uid"]
        remove_pod_dir(self.state_dir, uid)
        if not already_gone:
            worker.ensure_gone()
        with self._lock:
            self.workers.pop(uid, None)
        log.info("pod %s: deleted, processes gone", worker.key)

    def resync(self, pods: list[dict[str, Any]]) -> None:
        """After a re-list: pods deleted while no watch was open are handled as DELETED."""
        seen = {p["metadata"]["uid"] for p in pods}
        with self._lock:
            missing = [w for uid, w in self.workers.items() if uid not in seen]
        for worker in missing:
            self.handle("DELETED", worker.pod)
        # Pods deleted while no runner was running leave their emptyDir/configMap copies behind.
        with self._lock:
            known = seen | set(self.workers)
        for stale in (self.state_dir / "volumes" / "pods").glob("*"):
            if stale.name not in known:
                remove_pod_dir(self.state_dir, stale.name)
        for pod in pods:
            self.handle("SYNC", pod)

    # -- watch ------------------------------------------------------------------------------------
    def watch_forever(self) -> None:
        selector = f"spec.nodeName={self.node}"
        while True:
            try:
                listed = json.loads(_raw(self.api.list_pod_for_all_namespaces(
                    field_selector=selector, _preload_content=False)))
                self.resync(listed["items"])
                version = listed["metadata"]["resourceVersion"]
                while True:
                    stream = watch.Watch().stream(self.api.list_pod_for_all_namespaces, field_selector=selector,
                                                  resource_version=version, timeout_seconds=120,
                                                  allow_watch_bookmarks=True)
                    for event in stream:
                        obj = event["raw_object"]
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if event["type"] != "BOOKMARK":
                            self.handle(event["type"], obj)
            except Shutdown:
                raise
            except ApiException as err:
                if err.status != 410:
                    log.warning("watch failed (%s %s); re-listing", err.status, err.reason)
                    time.sleep(2)
            except Exception as err:  # API briefly away, a malformed event: re-list and carry on
                log.warning("watch failed (%s); re-listing", err)
                time.sleep(2)

    def shutdown(self) -> None:
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.request_stop(SHUTDOWN_GRACE, deleted=False)
        deadline = time.monotonic() + SHUTDOWN_GRACE + 5.5
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


def write_pidfile(path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        other = int(path.read_text())
        if other != os.getpid():
            os.kill(other, 0)
            log.error("another pod runner is running (pid %d, %s)", other, path)
            return False
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass
    path.write_text(str(os.getpid()))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=str(ROOT / ".cluster/kubeconfig"))
    parser.add_argument("--node", default="acgs-local-0")
    parser.add_argument("--state-dir", default=str(ROOT / ".cluster"))
    parser.add_argument("--pod-cidr", default=DEFAULT_POD_CIDR,
                        help="pod addresses, routed to lo while the runner runs (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    state_dir = Path(args.state_dir).resolve()
    pidfile = state_dir / "pids" / "podrunner.pid"
    if not write_pidfile(pidfile):
        return 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise Shutdown(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    api = client.CoreV1Api(config.new_client_from_config(config_file=args.kubeconfig))
    network = route_pod_network(args.pod_cidr)
    runner = Runner(api, args.node, state_dir, network)
    log.info("running pods bound to %s on %s (state in %s)", args.node, network, state_dir)
    try:
        runner.watch_forever()
    except Shutdown as why:
        log.info("%s: stopping every pod's processes", why)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        runner.shutdown()
    finally:
        unroute_pod_network(network)
        if pidfile.exists() and pidfile.read_text().strip() == str(os.getpid()):
            pidfile.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
