"""Probes for hack/podrunner/: httpGet (against the pod IP), tcpSocket and exec (inside the
container's mount namespace), with the kubelet's thresholds and timing."""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("podrunner.probe")


def _port(value: int | str, container: dict[str, Any]) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"probe port {value!r} is not a named port of container {container['name']!r}")


def probe_once(probe: dict[str, Any], pod_ip: str, container: dict[str, Any], env: Mapping[str, str],
               pid: int | None) -> bool:
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            host, port = get.get("host") or pod_ip, _port(get["port"], container)
            if get.get("scheme", "HTTP").upper() == "HTTPS":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=ssl._create_unverified_context())
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            headers.setdefault("User-Agent", "kube-probe/1.37")
            try:
                conn.request("GET", get.get("path") or "/", headers=headers)
                return 200 <= conn.getresponse().status < 400
            finally:
                conn.close()
        if "tcpSocket" in probe:
            tcp = probe["tcpSocket"]
            with socket.create_connection((tcp.get("host") or pod_ip, _port(tcp["port"], container)), timeout):
                return True
        if "exec" in probe:
            if pid is None:
                return False
            # nsenter: the command sees the container's volume mounts, as in a real container.
            argv = ["nsenter", "-t", str(pid), "-m", "--", *probe["exec"]["command"]]
            return subprocess.run(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0
        log.warning("probe kind %s is not supported here; treating it as passing", sorted(probe))
        return True
    except (OSError, ValueError, subprocess.TimeoutExpired, http.client.HTTPException):
        return False


class Prober(threading.Thread):
    """Runs one probe for one container run. `on_change(result)` is called when the thresholded
    result flips (True = passing); it starts as None (unknown)."""

    def __init__(self, kind: str, probe: dict[str, Any], pod_ip: str, container: dict[str, Any],
                 env: Mapping[str, str], pid: int, stop: threading.Event,
                 on_change: Callable[[str, bool], None]) -> None:
        super().__init__(name=f"probe-{kind}-{container['name']}", daemon=True)
        self.kind, self.probe, self.pod_ip, self.container = kind, probe, pod_ip, container
        self.env, self.pid, self.stop, self.on_change = env, pid, stop, on_change
        self.result: bool | None = None

    def run(self) -> None:
        period = float(self.probe.get("periodSeconds") or 10)
        success_needed = int(self.probe.get("successThreshold") or 1)
        failure_needed = int(self.probe.get("failureThreshold") or 3)
        successes = failures = 0
        if self.stop.wait(float(self.probe.get("initialDelaySeconds") or 0)):
            return
        while not self.stop.is_set():
            ok = probe_once(self.probe, self.pod_ip, self.container, self.env, self.pid)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            new = self.result
            if successes >= success_needed:
                new = True
            elif failures >= failure_needed:
                new = False
            if new != self.result and not self.stop.is_set():
                self.result = new
                log.info("%s probe of %s: %s", self.kind, self.container["name"], "passing" if new else "failing")
                self.on_change(self.kind, bool(new))
            if self.kind == "startup" and new:
                return  # a startup probe stops once it has passed
            if self.stop.wait(period):
                return
