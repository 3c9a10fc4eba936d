"""The model in its own process, so HTTP handling and generation do not share one GIL.

Why: for a small model on CPU, `generate` is mostly Python (the decoding loop), and so is aiohttp.
In one process they take turns on the GIL, so every request's HTTP work is added to the model's
time (measured: 0.6-0.7x of the raw batched throughput). In two processes they overlap. vLLM splits
its API server and engine the same way.

`ProcessBackend` implements `ModelBackend`: `load()` starts a spawned child that verifies and
loads the artifact with `ArtifactBackend` and reports a ModelCard or the LoadFailure;
`generate()` sends one batch over a pipe and blocks (in a batcher worker thread, GIL released)
until the texts come back. Prompt formatting and decision parsing are pure text and stay here.

Throughput (profiled under the serving benchmark, bench/serving/PROFILE.md): the model process is
the bottleneck, the HTTP process mostly idle. So the model process does only the model's work:
- Pipelining: up to `pipeline_depth` (2) batches are on the pipe at once, so the child starts the
  next batch as soon as it sends a reply. The child answers in order; callers take their reply in
  the order they sent (a ticket each).
- Tokenizing here: the HTTP process encodes prompts with the artifact's own `tokenizer.json` (the
  `tokenizers` library, no torch) and sends token ids. That was ~14 % of the model process's time.
  At load the child sends its transformers tokenizer's ids for probe prompts; only if this
  process's ids agree exactly does it send ids, otherwise it sends text and the child tokenizes.
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
    probes = _probe_prompts(backend)
    tokenizer = {"file": backend.tokenizer_file(), "probes": probes, "ids": backend.encode(probes)}
    conn.send(("loaded", asdict(card), tokenizer))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return  # parent closed the pipe: shutdown
        if message is None:
            return
        kind, batch = message
        try:
            texts = backend.generate_ids(batch) if kind == "ids" else backend.generate(batch)
            conn.send(("ok", texts))
        except Exception as error:  # noqa: BLE001 - one bad batch fails its requests, not the server
            conn.send(("error", f"{type(error).__name__}: {error}"))


def _probe_prompts(backend: ArtifactBackend) -> list[str]:
    """Prompts both tokenizers must encode identically before the HTTP process may tokenize:
    one per dataset type plus text with digits, punctuation, unknown words and odd spacing."""
    from acgs_server.schemas import warmup_records

    return [backend.format_prompt(record) for record in warmup_records()] + [
        "", " ", "ÄÖÜ ß 東京 🙂", "risk_level=0.75; actors: 12  agents\n\tUNKNOWNWORD x-y/z", "DENY APPROVE ESCALATE",
    ]


def _load_tokenizer(info: Mapping[str, Any]) -> Any:
    """The artifact's tokenizer for this process, or None (send text) unless it encodes the
    child's probe prompts exactly as the child's transformers tokenizer does."""
    if not info.get("file"):
        return None
    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(info["file"])
        ids = [encoding.ids for encoding in tokenizer.encode_batch(info["probes"], add_special_tokens=False)]
    except Exception:  # noqa: BLE001 - any problem means: let the model process tokenize
        logger.warning("cannot tokenize in the HTTP process; the model process will", exc_info=True)
        return None
    if ids != info["ids"]:
        logger.warning("tokenizer.json encodes differently from the model's tokenizer; the model process will tokenize")
        return None
    return tokenizer


class ProcessBackend:
    """ModelBackend whose model lives in a child process (see module docstring)."""

    def __init__(self, log_level: str = "INFO", **backend_kwargs: Any) -> None:
        self._backend_kwargs = backend_kwargs
        self._log_level = log_level
        self._conn: multiprocessing.connection.Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        # Pipelined calls from several batcher threads: sends are serialized and numbered; the
        # child replies in order, so each caller waits for its turn to read its own reply.
        self._send_lock = threading.Lock()
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._now_serving = 0
        self._broken: WorkerDied | None = None
        self._prompting: Any = None
        self._tokenizer: Any = None

    # Batches the batcher may keep on the pipe at once (see module docstring).
    pipeline_depth = 2

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
            raise LoadFailure(WORKER_EXITED,
                              f"model process exited during load (exit code {process.exitcode})") from None
        if message[0] == "failed":
            _, reason, text, details = message
            process.join(5)
            raise LoadFailure(reason, text, details)
        self._tokenizer = _load_tokenizer(message[2])
        logger.info("model process %d loaded the artifact (prompts tokenized in the %s process)",
                    process.pid, "HTTP" if self._tokenizer is not None else "model")
        return ModelCard(**message[1])

    def generate(self, prompts: Sequence[str]) -> list[str]:
        if self._conn is None:
            raise WorkerDied("model process not started")
        if self._tokenizer is not None:
            # encode_batch runs in Rust without the GIL, here in a batcher thread: off the event loop.
            ids = [e.ids for e in self._tokenizer.encode_batch(list(prompts), add_special_tokens=False)]
            message: tuple[str, list[Any]] = ("ids", ids)
        else:
            message = ("text", list(prompts))
        with self._send_lock:
            if self._broken is not None:
                raise WorkerDied(str(self._broken))
            ticket = self._next_ticket
            try:
                self._conn.send(message)
            except (BrokenPipeError, ConnectionResetError, OSError) as error:
                raise self._break(error) from error
            self._next_ticket += 1
        with self._turn:
            while self._now_serving != ticket and self._broken is None:
                self._turn.wait()
            if self._broken is not None:
                raise WorkerDied(str(self._broken))
        try:
            reply = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as error:
            raise self._break(error) from error
        finally:
            with self._turn:
                self._now_serving += 1
                self._turn.notify_all()
        if reply[0] == "error":
            raise RuntimeError(reply[1])
        return list(reply[1])

    def _break(self, error: BaseException) -> WorkerDied:
        """The pipe failed: this and every later or waiting call raises WorkerDied."""
        code = self._process.exitcode if self._process is not None else None
        with self._turn:
            if self._broken is None:
                self._broken = WorkerDied(f"model process exited (exit code {code}): {error!r}")
            self._turn.notify_all()
        return self._broken

    def format_prompt(self, record: Mapping[str, Any]) -> str:
        return str(self._prompting.format_prompt(record))

    def parse_decision(self, text: str) -> str | None:
        decision = self._prompting.parse_decision(text)
        return None if decision is None else str(decision)

    def close(self, timeout: float = 10.0) -> None:
        """Ask the child to exit after its current batch; kill it if it does not."""
        if self._conn is not None:
            with self._send_lock:
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
