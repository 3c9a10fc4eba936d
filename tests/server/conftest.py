"""Fixtures for the model-server tests: one real trained artifact per session, and real
`acgs-serve` processes on 127.0.0.1 talking real HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from acgs_contract.constitution import CONSTITUTIONAL_HASH

VENV_BIN = Path(sys.executable).parent
HASH = CONSTITUTIONAL_HASH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tool(name: str) -> str:
    path = VENV_BIN / name
    return str(path) if path.exists() else name


@dataclass
class HttpResult:
    status: int
    body: Any
    headers: dict[str, str]
    text: str


@dataclass
class ServerProcess:
    """A running `acgs-serve`; stderr goes to a file so a failing test can show it."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    metrics_port: int = 0
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                timeout: float = 30.0, headers: dict[str, str] | None = None, base: str | None = None) -> HttpResult:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request((base or self.url) + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, payload, headers = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as error:
            status, payload, headers = error.code, error.read(), dict(error.headers)
        text = payload.decode()
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        return HttpResult(status, parsed, headers, text)

    def get(self, path: str) -> HttpResult:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpResult:
        return self.request("POST", path, body=body, raw=raw, headers=headers)

    def metrics(self) -> str:
        """The Prometheus text from the separate metrics listener."""
        return self.request("GET", "/metrics", base=self.metrics_url).text

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, predicate: Any, timeout: float, what: str) -> HttpResult:
        deadline = time.monotonic() + timeout
        last: HttpResult | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}) waiting for {what}:\n{self.logs()}")
            try:
                last = self.get("/ready")
                if predicate(last):
                    return last
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last /ready={last}:\n{self.logs()[-4000:]}")

    def wait_ready(self, timeout: float = 120.0) -> HttpResult:
        return self.wait_for(lambda r: r.status == 200, timeout, "ready")

    def wait_failed(self, timeout: float = 60.0) -> HttpResult:
        return self.wait_for(lambda r: r.status == 503 and r.body.get("phase") == "Failed", timeout, "Failed")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def launch(artifact: Path, log_dir: Path, *flags: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start `acgs-serve` on a free loopback port and wait until /health answers."""
    port, metrics_port = free_port(), free_port()
    log_path = log_dir / f"acgs-serve-{port}.log"
    args = [_tool("acgs-serve"), "--artifact", str(artifact), "--host", "127.0.0.1", "--port", str(port),
            "--metrics-port", str(metrics_port), *flags]
    # One torch thread: these machines have 2 shared cores and several test processes.
    full_env = {**os.environ, "ACGS_TORCH_THREADS": "1", **(env or {})}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = ServerProcess(proc, port, log_path, metrics_port, args)
    deadline = time.monotonic() + 30
    while True:
        try:
            if server.get("/health").status == 200:
                return server
        except (urllib.error.URLError, ConnectionError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"server did not answer /health:\n{server.logs()}")
        time.sleep(0.05)


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Factory: start_server(artifact, *flags, env=...) -> ServerProcess (stopped at teardown)."""
    started: list[ServerProcess] = []
    log_dir = tmp_path_factory.mktemp("serve-logs")

    def start(artifact: Path, *flags: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = launch(artifact, log_dir, *flags, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory, builtin_base: None) -> Path:
    """A real artifact from the trainer's own CLI: generated data, a short LoRA run on the
    built-in tiny Llama (no DP). Built once per session; tests copy it before corrupting it."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    work = tmp_path_factory.mktemp("artifact-build")
    data = work / "data.jsonl"
    out = work / "train-output"
    _run([_tool("acgs-data"), "generate", "--type", "all", "--size", "60", "--out", str(data)], work)
    _run([_tool("acgs-train"), "--data", str(data), "--output", str(out), "--no-dp",
          "--base-model", "builtin:tiny-llama", *TRAIN_FLAGS], work)
    return out / "artifact"  # the trainer's output volume holds checkpoints/, artifact/, result.json


# Enough steps for the tiny model to learn the "DECISION principles" format, so a predict test can
# expect a decision word (a 2-step model emits random words). Kept small: 2 shared cores.
TRAIN_FLAGS: list[str] = ["--max-steps", "60"]


@pytest.fixture
def artifact_copy(tiny_artifact: Path, tmp_path: Path) -> Path:
    """A private copy a test may corrupt."""
    dest = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, dest)
    return dest


def artifact_digest(artifact: Path) -> str:
    return str(json.loads((artifact / "manifest.json").read_text())["digest"])
