#!/usr/bin/env python3
"""A minimal kubelet for the local control plane: runs the pods bound to one node as local processes.

No container engine exists on these machines, so pods that must really run (the trainer Job's pod,
the model server's Deployment pods) are bound to the kwok node `acgs-local-0`, which kwok keeps
alive but whose pods it leaves alone. This runner watches those pods and, like a kubelet, gives each
a pod IP (127.0.0.N), runs its init containers then containers (`command` + `args`, env, volumes
bind-mounted in a private mount namespace), probes them, restarts them per restartPolicy, and
reports it all in the pod's status, so the Job, Deployment and EndpointSlice controllers do the rest.

Processes run as root whatever the pod's securityContext says (restricted Pod Security admits the
spec; nothing here enforces it). Logs: <state-dir>/logs/pods/<namespace>_<pod>_<container>.log.

    python hack/podrunner.py --kubeconfig .cluster/kubeconfig [--node acgs-local-0] [--state-dir .cluster]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from podrunner_env import decode_data  # noqa: E402
from podrunner_pod import PodWorker, delete_now  # noqa: E402
from podrunner_volumes import remove_pod_dir  # noqa: E402

log = logging.getLogger("podrunner")
ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("Succeeded", "Failed")
SHUTDOWN_GRACE = 3.0  # localcluster's `down` waits 10 s before SIGKILL: stay well inside it


class Shutdown(BaseException):
    """Raised by the SIGTERM/SIGINT handler; a BaseException so no `except Exception` swallows it."""


class IPPool:
    """127.0.0.N per live pod: all of 127/8 reaches loopback on Linux, so each pod's server can bind
    its own address and the same port, as pods on a real node do."""

    def __init__(self) -> None:
        self._by_uid: dict[str, str] = {}
        self._lock = threading.Lock()

    def allocate(self, uid: str, prefer: str | None) -> str:
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            used = set(self._by_uid.values())
            if prefer and prefer.startswith("127.0.0.") and prefer not in used and prefer != "127.0.0.1":
                ip = prefer  # a pod the runner saw before it restarted keeps its address
            else:
                ip = next(f"127.0.0.{n}" for n in range(2, 255) if f"127.0.0.{n}" not in used)
            self._by_uid[uid] = ip
            return ip

    def release(self, uid: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)


class Runner:
    def __init__(self, api: client.CoreV1Api, node: str, state_dir: Path) -> None:
        self.api, self.node, self.state_dir = api, node, state_dir
        self.workers: dict[str, PodWorker] = {}
        self.ips = IPPool()
        self._lock = threading.Lock()
        self.allocatable = self._node_allocatable()

    def _node_allocatable(self) -> dict[str, str]:
        try:
            node = json.loads(self.api.read_node(self.node, _preload_content=False).data)
            return dict(node.get("status", {}).get("allocatable") or {})
        except Exception as err:
            log.warning("cannot read node %s (%s); resourceFieldRef limits default to 0", self.node, err)
            return {}

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        read = self.api.read_namespaced_config_map if kind == "configmap" else self.api.read_namespaced_secret
        try:
            return decode_data(kind, json.loads(read(name, namespace, _preload_content=False).data))
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
        if worker is None and (pod.get("status") or {}).get("phase") not in TERMINAL:
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
        for pod in pods:
            self.handle("SYNC", pod)

    # -- watch ------------------------------------------------------------------------------------
    def watch_forever(self) -> None:
        selector = f"spec.nodeName={self.node}"
        while True:
            try:
                listed = json.loads(self.api.list_pod_for_all_namespaces(
                    field_selector=selector, _preload_content=False).data)
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
    runner = Runner(api, args.node, state_dir)
    log.info("running pods bound to %s (state in %s)", args.node, state_dir)
    try:
        runner.watch_forever()
    except Shutdown as why:
        log.info("%s: stopping every pod's processes", why)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        runner.shutdown()
    finally:
        if pidfile.exists() and pidfile.read_text().strip() == str(os.getpid()):
            pidfile.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
