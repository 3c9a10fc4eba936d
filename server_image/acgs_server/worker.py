"""The model in its own process, so HTTP handling and generation do not share one GIL.

Why: for a small model on CPU, `generate` is mostly Python (the decoding loop), and so is aiohttp.
In one process they take turns on the GIL, so every request's HTTP work is added to the model's
time (measured: 0.6-0.7x of the raw batched throughput). In two processes they overlap. vLLM splits
its API server and engine the same way.

`ProcessBackend` implements `ModelBackend`: `load()` starts a spawned child that verifies and
loads the artifact with `ArtifactBackend` and reports a ModelCard or the LoadFailure;
`generate()` sends one batch over a pipe and blocks (in the batcher's worker thread, GIL released)
until the texts come back. Prompt formatting and decision parsing are pure text and stay here.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from dataclasses import asdict
from typing import Any, Mapping, Sequence

from acgs_server.backend import MODEL_LOAD_FAILED, ArtifactBackend, LoadFailure, ModelCard

logger = logging.getLogger(__name__)

WORKER_EXITED = "ModelWorkerExited"


class WorkerDied(RuntimeError):
    """The model process is gone; this server cannot generate any more."""


def _child_main(conn: multiprocessing.connection.Connection, backend_kwargs: dict[str, Any], log_level: str) -> None:
    # SIGTERM/SIGINT are for the parent, which drains requests and then closes this pipe; the
    # child must not die mid-batch because a terminal or the kubelet signalled the whole group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[model]: %(message)s")
    backend = ArtifactBackend(**backend_kwargs)
    try:
        card = backend.load()
    except LoadFailure as failure:
        conn.send(("failed", failure.reason, failure.message, failure.details))
        return
    except BaseException as error:  # noqa: BLE001 - report, do not hang the parent
        conn.send(("failed", MODEL_LOAD_FAILED, repr(error), {}))
        return
    conn.send(("loaded", asdict(card)))
    while True:
        try:
            prompts = conn.recv()
        except EOFError:
            return  # parent closed the pipe: shutdown
        if prompts is None:
            return
        try:
            conn.send(("ok", backend.generate(prompts)))
        except Exception as error:  # noqa: BLE001 - one bad batch fails its requests, not the server
            conn.send(("error", f"{type(error).__name__}: {error}"))


class ProcessBackend:
    """ModelBackend whose model lives in a child process (see module docstring)."""

    def __init__(self, log_level: str = "INFO", **backend_kwargs: Any) -> None:
        self._backend_kwargs = backend_kwargs
        self._log_level = log_level
        self._conn: multiprocessing.connection.Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._lock = threading.Lock()  # one batch in flight on the pipe at a time
        self._prompting: Any = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def load(self) -> ModelCard:
        from acgs_trainer import prompting  # text only: no torch in this process

        self._prompting = prompting
        # spawn, not fork: this process already runs threads (event loop helpers, log writer).
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_child_main, args=(child, self._backend_kwargs, self._log_level),
                                  name="acgs-model", daemon=True)
        process.start()
        child.close()
        self._conn, self._process = parent, process
        try:
            message = parent.recv()
        except EOFError:
            process.join(5)
            raise LoadFailure(WORKER_EXITED, f"model process exited during load (exit code {process.exitcode})")
        if message[0] == "failed":
            _, reason, text, details = message
            process.join(5)
            raise LoadFailure(reason, text, details)
        logger.info("model process %d loaded the artifact", process.pid)
        return ModelCard(**message[1])

    def generate(self, prompts: Sequence[str]) -> list[str]:
        if self._conn is None:
            raise WorkerDied("model process not started")
        with self._lock:
            try:
                self._conn.send(list(prompts))
                reply = self._conn.recv()
            except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as error:
                code = self._process.exitcode if self._process is not None else None
                raise WorkerDied(f"model process exited (exit code {code}): {error!r}") from error
        if reply[0] == "error":
            raise RuntimeError(reply[1])
        return list(reply[1])

    def format_prompt(self, record: Mapping[str, Any]) -> str:
        return str(self._prompting.format_prompt(record))

    def parse_decision(self, text: str) -> str | None:
        decision = self._prompting.parse_decision(text)
        return None if decision is None else str(decision)

    def close(self, timeout: float = 10.0) -> None:
        """Ask the child to exit after its current batch; kill it if it does not."""
        if self._conn is not None:
            with self._lock:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
                self._conn.close()
                self._conn = None
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                logger.warning("model process %d did not exit; killing it", self._process.pid)
                os.kill(self._process.pid or 0, signal.SIGKILL)
                self._process.join(5)
