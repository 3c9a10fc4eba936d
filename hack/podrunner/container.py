"""One container of a pod run by hack/podrunner/: a local process in its own process group and
private mount namespace, restarted per restartPolicy with the kubelet's backoff, probed, and
reported as a containerStatus."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from acgs_contract.result import MAX_TERMINATION_MESSAGE_BYTES
from acgs_contract.timefmt import now

from .env import ContainerConfigError, base_environment, command_line, container_env
from .probe import Prober
from .volumes import Bind, binds_for, mount_script, pod_dir

log = logging.getLogger("podrunner.container")
MAX_MESSAGE = MAX_TERMINATION_MESSAGE_BYTES  # what a kubelet keeps of a termination message
BACKOFF_START, BACKOFF_CAP, BACKOFF_RESET_AFTER = 10.0, 300.0, 600.0


class PodContext(Protocol):
    """What a container needs from its pod worker."""
    pod: dict[str, Any]
    state_dir: Path
    pod_ip: str
    volumes: dict[str, tuple[Path, bool]]
    allocatable: dict[str, str]
    grace: float

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None: ...
    def changed(self) -> None: ...


def kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; children that ignored SIGTERM in its group must not outlive it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


class Container:
    def __init__(self, ctx: PodContext, spec: dict[str, Any], init: bool) -> None:
        self.ctx, self.spec, self.init, self.name = ctx, spec, init, spec["name"]
        self.restart_count = 0
        self.state: dict[str, Any] = {"waiting": {"reason": "PodInitializing" if not init else "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.ready = self.started = False
        self.exit_code: int | None = None
        self.pid: int | None = None
        self.done = threading.Event()
        self._unhealthy = threading.Event()
        self._probers: dict[str, Prober] = {}
        self._failed_probe = ""
        uid, ns, pod = ctx.pod["metadata"]["uid"], ctx.pod["metadata"]["namespace"], ctx.pod["metadata"]["name"]
        self.log_path = ctx.state_dir / "logs" / "pods" / f"{ns}_{pod}_{self.name}.log"
        self.message_path = pod_dir(ctx.state_dir, uid) / "termination" / self.name

    def status(self) -> dict[str, Any]:
        status = {"name": self.name, "image": self.spec.get("image") or "local", "imageID": "",
                  "ready": self.ready, "restartCount": self.restart_count, "state": self.state,
                  "lastState": self.last_state, "started": self.started}
        if self.pid:
            status["containerID"] = f"podrunner://{self.pid}"
        return status

    def adopt(self, previous: dict[str, Any] | None, restart_policy: str) -> None:
        """Carry over what a previous runner reported for this pod: the apiserver forbids moving a
        container that may not restart back out of `terminated`, and restartCount only grows."""
        if not previous:
            return
        self.restart_count = int(previous.get("restartCount") or 0)
        terminated = (previous.get("state") or {}).get("terminated")
        finished = restart_policy == "Never" or (terminated or {}).get("exitCode") == 0 and restart_policy != "Always"
        if terminated and finished:
            self.state, self.exit_code = {"terminated": terminated}, int(terminated.get("exitCode", 0))
            self.last_state = previous.get("lastState") or {}
            self.done.set()

    def run(self, stop: threading.Event, restart_policy: str) -> None:
        """Run until the container will not run again: exit under restartPolicy, or `stop`."""
        if self.done.is_set():  # adopted as finished from a previous runner
            return
        backoff = BACKOFF_START
        try:
            while not stop.is_set():
                began = time.monotonic()
                code = self._run_once(stop)
                if stop.is_set():
                    break
                if code is None:  # not configurable yet (missing ConfigMap key, ...): retry like the kubelet
                    stop.wait(2.0)
                    continue
                if restart_policy == "Never" or (restart_policy == "OnFailure" and code == 0):
                    break
                if time.monotonic() - began > BACKOFF_RESET_AFTER:
                    backoff = BACKOFF_START
                self.last_state, self.state = self.state, {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {backoff:.0f}s restarting failed container={self.name}"}}
                self.ctx.changed()
                if stop.wait(backoff):
                    break
                backoff = min(backoff * 2, BACKOFF_CAP)
                self.restart_count += 1
        finally:
            self.done.set()

    def _terminate(self, code: int, reason: str, message: str, started: str) -> int:
        self.exit_code, self.ready = code, False
        self.state = {"terminated": {"exitCode": code, "reason": reason, "startedAt": started,
                                     "finishedAt": now(), **({"message": message} if message else {})}}
        self.ctx.changed()
        return code

    def _run_once(self, stop: threading.Event) -> int | None:
        pod = self.ctx.pod
        try:
            env = {**base_environment(pod), **container_env(pod, self.spec, self.ctx.lookup, self.ctx.allocatable)}
            argv = command_line(self.spec, env)
            binds = binds_for(self.spec, self.ctx.volumes, env)
        except ContainerConfigError as err:
            self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}
            self.ctx.changed()
            return None
        except ValueError as err:  # no command: this can never start here
            return self._terminate(128, "StartError", str(err), now())
        self.message_path.parent.mkdir(parents=True, exist_ok=True)
        self.message_path.write_bytes(b"")
        binds.append(Bind(self.message_path, self.spec.get("terminationMessagePath") or "/dev/termination-log",
                          False))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        script = mount_script(binds, self.spec.get("workingDir"))
        # pdeathsig: should the runner die without cleaning up, its containers die with it.
        wrapper = ["setpriv", "--pdeathsig", "KILL", "unshare", "-m", "--propagation", "private",
                   "sh", "-c", script, "sh", *argv]
        started = now()
        try:
            with open(self.log_path, "ab") as out:
                proc = subprocess.Popen(wrapper, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:
            return self._terminate(128, "StartError", f"cannot start {argv[0]!r}: {err}", started)
        self.pid = proc.pid
        log.info("started %s/%s container %s pid %d: %s", pod["metadata"]["namespace"], pod["metadata"]["name"],
                 self.name, proc.pid, argv)
        self.state = {"running": {"startedAt": started}}
        probes = {k: self.spec.get(f"{k}Probe") for k in ("startup", "readiness", "liveness")}
        self.started = not probes["startup"]
        self.ready = not probes["readiness"] and self.started
        self._unhealthy.clear()
        run_stop = threading.Event()
        self._probers = {k: Prober(k, p, self.ctx.pod_ip, self.spec, env, proc.pid, run_stop, self._on_probe)
                         for k, p in probes.items() if p and not self.init}
        if "startup" in self._probers:
            self._probers["startup"].start()
        else:
            self._start_probers()
        self.ctx.changed()
        killed_for = ""
        try:
            while proc.poll() is None:
                if stop.wait(0.2) or self._unhealthy.is_set():
                    killed_for = "" if stop.is_set() else "liveness"
                    grace = self.ctx.grace if stop.is_set() else min(self.ctx.grace, 30.0)
                    grace -= self._pre_stop(grace) if stop.is_set() else 0.0
                    kill_group(proc, max(grace, 0.0))
                    break
        finally:
            run_stop.set()
            if proc.poll() is None:
                kill_group(proc, 0.5)
            else:
                _reap_group(proc.pid)
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        message = self._termination_message(code)
        if killed_for:
            message = message or f"Container {self.name} failed {self._failed_probe} probe, will be restarted"
        return self._terminate(code, "Completed" if code == 0 else "Error", message, started)

    def _pre_stop(self, grace: float) -> float:
        """lifecycle.preStop.sleep, as the kubelet runs it before SIGTERM (within the grace period):
        it lets endpoints drop the pod before the program stops listening. Returns the seconds spent."""
        seconds = float(((self.spec.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0))
        seconds = min(seconds, grace)
        if seconds > 0:
            time.sleep(seconds)
        return seconds

    def _start_probers(self) -> None:
        for kind in ("readiness", "liveness"):
            if kind in self._probers and not self._probers[kind].is_alive():
                self._probers[kind].start()

    def _on_probe(self, kind: str, passing: bool) -> None:
        if kind == "startup":
            if passing:
                self.started = True
                self.ready = "readiness" not in self._probers
                self._start_probers()
            else:
                self._failed_probe = kind
                self._unhealthy.set()
        elif kind == "readiness":
            self.ready = passing and self.started
        elif kind == "liveness" and not passing:
            self._failed_probe = kind
            self._unhealthy.set()
        self.ctx.changed()

    def _termination_message(self, code: int) -> str:
        try:
            text = self.message_path.read_bytes()[:MAX_MESSAGE].decode(errors="replace")
        except OSError:
            text = ""
        if not text.strip() and code != 0 and self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            try:  # the kubelet's fallback: the last 80 lines, at most 2 KiB
                tail = self.log_path.read_bytes().splitlines()[-80:]
                text = b"\n".join(tail)[-2048:].decode(errors="replace")
            except OSError:
                text = ""
        return text


def _reap_group(pgid: int) -> None:
    """The leader exited on its own; whatever it left running in its group goes too."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_in_thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
