"""One pod run by hack/podrunner/: init containers in order, then every container at once; the
pod's status (phase, IPs, conditions, containerStatuses) is patched only when it changed."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from acgs_contract.timefmt import now

from .container import Container, run_in_thread
from .env import ContainerConfigError
from .volumes import materialize

log = logging.getLogger("podrunner.pod")
HOST_IP = "127.0.0.1"
MAX_GRACE = 30.0


class PodWorker(threading.Thread):
    def __init__(self, api: CoreV1Api, pod: dict[str, Any], state_dir: Path, pod_ip: str,
                 allocatable: dict[str, str], lookup: Callable[[str, str, str], dict[str, str] | None]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.api, self.pod, self.state_dir, self.pod_ip = api, pod, state_dir, pod_ip
        self.allocatable, self._lookup = allocatable, lookup
        self.key = f"{meta['namespace']}/{meta['name']}"
        # fieldRef status.podIP/hostIP must see the addresses given here, before any status is written.
        pod.setdefault("status", {}).update({"podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "hostIP": HOST_IP,
                                             "hostIPs": [{"ip": HOST_IP}]})
        self.volumes: dict[str, tuple[Path, bool]] = {}
        self.grace = min(float(pod["spec"].get("terminationGracePeriodSeconds", 30)), MAX_GRACE)
        self.stop = threading.Event()  # set on deletion or runner shutdown: containers are killed
        self.deleted = False
        self.phase, self.reason, self.message = "Pending", "", ""
        self.start_time = (pod.get("status") or {}).get("startTime") or now()
        self.initialized = False
        self.init_containers = [Container(self, c, True) for c in pod["spec"].get("initContainers") or []]
        self.containers = [Container(self, c, False) for c in pod["spec"].get("containers") or []]
        policy = pod["spec"].get("restartPolicy", "Always")
        previous = pod.get("status") or {}
        init_policy = "Never" if policy == "Never" else "OnFailure"
        for group, key, own_policy in ((self.init_containers, "initContainerStatuses", init_policy),
                                       (self.containers, "containerStatuses", policy)):
            reported = {s["name"]: s for s in previous.get(key) or []}
            for container in group:
                container.adopt(reported.get(container.name), own_policy)
        self._conditions: dict[str, tuple[str, str]] = {}
        self._lock = threading.RLock()
        self._patched: dict[str, Any] | None = None

    # -- PodContext -------------------------------------------------------------------------------
    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return self._lookup(kind, namespace, name)

    def changed(self) -> None:
        # Once stopping, containers die one by one; the pod's final status is written once, after.
        if not self.stop.is_set():
            self.sync()

    # -- control ----------------------------------------------------------------------------------
    def request_stop(self, grace: float | None, deleted: bool) -> None:
        if grace is not None:
            self.grace = min(max(grace, 0.0), MAX_GRACE)
        self.deleted = self.deleted or deleted
        self.stop.set()

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # a bad pod must never take the runner down
            log.exception("pod %s: runner error", self.key)
            self.phase, self.reason, self.message = "Failed", "RunnerError", "hack/podrunner/ failed to run the pod"
            self.changed()
        finally:
            self.stop.set()

    def _run(self) -> None:
        log.info("pod %s: starting on %s", self.key, self.pod_ip)
        self.sync()
        while not self.stop.is_set():
            try:
                self.volumes = materialize(self.pod, self.state_dir, self.lookup, self.allocatable)
                break
            except ContainerConfigError as err:
                for c in self.init_containers + self.containers:
                    c.state = {"waiting": {"reason": "ContainerCreating", "message": f"volume: {err}"}}
                self.sync()
                self.stop.wait(2.0)
        policy = self.pod["spec"].get("restartPolicy", "Always")
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        expires = time.monotonic() + float(deadline) if deadline else None
        if expires is not None:
            run_in_thread(lambda: self._watch_deadline(expires), f"deadline-{self.key}")
        for init in self.init_containers:
            # An init container that fails is retried unless the pod may never restart anything.
            init.run(self.stop, "Never" if policy == "Never" else "OnFailure")
            if self.stop.is_set():
                return self._finish_stopped()
            if init.exit_code != 0:
                self.phase = "Failed"
                self.sync()
                return
        self.initialized, self.phase = True, "Running"
        self.sync()
        threads = [run_in_thread(functools.partial(c.run, self.stop, policy), f"ctr-{self.key}/{c.name}")
                   for c in self.containers]
        for thread in threads:
            thread.join()
        if self.stop.is_set():
            return self._finish_stopped()
        self.phase = "Succeeded" if all(c.exit_code == 0 for c in self.containers) else "Failed"
        log.info("pod %s: %s", self.key, self.phase)
        self.sync()

    def _watch_deadline(self, expires: float) -> None:
        if self.stop.wait(max(0.0, expires - time.monotonic())) or self.terminal:
            return
        log.info("pod %s: activeDeadlineSeconds exceeded", self.key)
        self.reason = "DeadlineExceeded"
        self.message = "Pod was active on the node longer than the specified deadline"
        self.request_stop(None, deleted=False)

    def _finish_stopped(self) -> None:
        """Containers were killed (deletion, deadline, runner shutdown): the pod ends in a terminal
        phase, as the kubelet does since 1.27, so the Job controller can count it."""
        all_ok = all(c.exit_code == 0 for c in self.containers) and self.initialized
        self.phase = "Failed" if self.reason or not all_ok else "Succeeded"
        if self.reason == "DeadlineExceeded" or self.deleted:
            self.sync(force=True)

    # -- status -----------------------------------------------------------------------------------
    def _condition(self, kind: str, ok: bool, reason: str = "") -> dict[str, Any]:
        status = "True" if ok else "False"
        previous = self._conditions.get(kind)
        if previous is None or previous[0] != status:
            self._conditions[kind] = (status, now())
        # The patch merges conditions by type: an explicit null clears a reason that no longer holds.
        return {"type": kind, "status": status, "lastProbeTime": None,
                "lastTransitionTime": self._conditions[kind][1], "reason": None if ok else (reason or None)}

    def status(self) -> dict[str, Any]:
        ready = self.phase == "Running" and all(c.ready for c in self.containers)
        not_ready = "PodCompleted" if self.terminal else "ContainersNotReady"
        status: dict[str, Any] = {
            "phase": self.phase, "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}],
            "podIP": self.pod_ip, "podIPs": [{"ip": self.pod_ip}], "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", self.initialized or not self.init_containers,
                                "ContainersNotInitialized"),
                self._condition("ContainersReady", ready, not_ready),
                self._condition("Ready", ready, not_ready),
                self._condition("PodScheduled", True),
            ],
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        if self.reason:
            status["reason"], status["message"] = self.reason, self.message
        return status

    def sync(self, force: bool = False) -> None:
        """Patch the status subresource when it differs from what was last written."""
        with self._lock:
            status = self.status()
            if status == self._patched and not force:
                return
            meta = self.pod["metadata"]
            try:
                self.api.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})
                self._patched = status
            except ApiException as err:
                if err.status == 404:
                    self.deleted = True
                    self.stop.set()
                else:
                    log.warning("pod %s: status patch failed (%s): %s", self.key, err.status, err.body)
            except Exception as err:  # the API may be briefly away; the next change retries
                log.warning("pod %s: status patch failed: %s", self.key, err)

    def reassert(self, live: dict[str, Any]) -> None:
        """Someone else rewrote this pod's readiness (the node lifecycle controller marks pods of a
        NotReady node not Ready): a kubelet writes its own view back, so does the runner."""
        def ready(conditions: list[dict[str, Any]] | None) -> str | None:
            return next((c.get("status") for c in conditions or [] if c.get("type") == "Ready"), None)

        if self.stop.is_set() or self._patched is None:
            return
        if ready((live.get("status") or {}).get("conditions")) != ready(self._patched.get("conditions")):
            self.sync(force=True)

    def ensure_gone(self) -> None:
        """After the processes are dead, make sure a pod marked for deletion really goes away."""
        delete_now(self.api, self.pod)


def delete_now(api: CoreV1Api, pod: dict[str, Any]) -> None:
    meta = pod["metadata"]
    try:
        api.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0,
                                  body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=meta["uid"])))
    except ApiException as err:
        if err.status not in (404, 409):
            log.warning("pod %s/%s: delete failed (%s)", meta["namespace"], meta["name"], err.status)
    except Exception as err:
        log.warning("pod %s/%s: delete failed: %s", meta["namespace"], meta["name"], err)
