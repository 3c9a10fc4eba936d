"""Shared helpers for the trainer tests: real subprocess runs of the entry points on tiny models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

BIN = Path(sys.executable).parent


def entry_point(name: str) -> list[str]:
    script = BIN / name
    if script.exists():
        return [str(script)]
    module = {"acgs-train": "acgs_trainer.cli", "acgs-data": "acgs_trainer.data_cli"}[name]
    return [sys.executable, "-m", module]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Two cores shared with other jobs: one intra-op thread keeps step times steady.
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("ACGS_PROGRESS_URL", None)
    env.update(extra)
    return env


def run_cli(name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 240
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*entry_point(name), *args], capture_output=True, text=True,
                          env=env or child_env(), timeout=timeout)


def read_result(output: Path) -> dict[str, Any]:
    return json.loads((output / "result.json").read_text())


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory, builtin_base: None) -> Path:
    """120 rule-labelled records of two types, written by the real acgs-data CLI."""
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    proc = run_cli("acgs-data", "generate", "--type", "constitutional_ai", "--size", "60",
                   "--out", str(path.with_name("a.jsonl")), "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("acgs-data", "generate", "--type", "wina_optimization", "--size", "60",
                   "--out", str(path.with_name("b.jsonl")), "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    path.write_text(path.with_name("a.jsonl").read_text() + path.with_name("b.jsonl").read_text())
    return path


# The baseline run's arguments; the resume test repeats them to compare digests.
def train_args(data: Path, output: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--output", str(output), "--max-steps", "200",
            "--batch-size", "8", "--checkpoint-every", "10", "--log-every", "20", "--seed", "3",
            "--eval-max-examples", "24", *extra]


class ProgressSink:
    """A small HTTP server on 127.0.0.1 standing in for the operator's progress endpoint."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, Any], str | None]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.posts.append((json.loads(body), self.headers.get("Authorization")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/progress/ns/tj"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def baseline_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[dict[str, Any]]:
    """One uninterrupted DP run (200 steps) reporting progress to a local sink."""
    pytest.importorskip("opacus")
    output = tmp_path_factory.mktemp("baseline") / "out"
    sink = ProgressSink()
    term = output.parent / "termination-log"
    proc = run_cli("acgs-train", *train_args(dataset, output, "--progress-url", sink.url,
                                             "--termination-log", str(term)),
                   env=child_env(ACGS_PROGRESS_TOKEN="s3cret"))
    sink.close()
    yield {"proc": proc, "output": output, "posts": sink.posts, "termination": term}
    shutil.rmtree(output, ignore_errors=True)
