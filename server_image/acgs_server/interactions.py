"""Hash-stamped interaction log for the data flywheel.

Each served request becomes one JSON line. A request handler only does `queue.put_nowait`; a
single background thread owns the files, so a slow or full disk can never stall serving. When the
queue is full the record is dropped and counted (a missing training example is cheaper than a
stalled request).

Files: `<dir>/interactions-<host>-<start>-<seq>.jsonl`. The host and start time keep replicas that
share one volume from writing into the same file; a new file starts when the current one passes
`max_bytes`, and the oldest files *of this writer* are deleted beyond `max_files`. Finished files
are never renamed, so a reader can consume any file except the newest one safely. Files are
created 0600 (they hold what clients asked); free text is left out of records unless the server
runs with --interaction-log-free-text.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from acgs_server.backend import ModelCard

logger = logging.getLogger(__name__)

RECORD_SCHEMA_VERSION = 1
_STOP = object()
FILE_MODE = 0o600
# Keys of a record's `input` that hold a client's free text.
FREE_TEXT_KEYS = ("request", "text")


def build_record(*, request_id: str, endpoint: str, card: "ModelCard", record: dict[str, Any],
                 generated_text: str, decision: str | None, latency_ms: float, free_text: bool) -> dict[str, Any]:
    """One interaction line. `record` is the trainer's dataset-record shape (`type` + `input`), so a
    flywheel can relabel and replay it as is; free text only when `free_text` (off by default)."""
    record_input = dict(record["input"])
    if not free_text:
        for key in FREE_TEXT_KEYS:
            record_input.pop(key, None)
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "request_id": request_id,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "endpoint": endpoint,
        "type": record["type"],
        "constitutional_hash": card.constitutional_hash,
        "model_name": card.name,
        "model_version": card.version,
        "digest": card.digest,
        "input": record_input,
        "generated_text": generated_text,
        "decision": decision,
        "latency_ms": latency_ms,
    }


@dataclass
class InteractionStats:
    """Counts since this server started (written = on disk, dropped = lost to a full queue)."""

    written: int = 0
    dropped: int = 0
    write_errors: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_decision: Counter[str] = field(default_factory=Counter)


class InteractionLogger:
    """Background JSONL writer with size rotation and drop-on-full."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int = 64 * 1024 * 1024,
        max_files: int = 20,
        queue_size: int = 10000,
        on_drop: Callable[[], None] | None = None,
        on_write: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._on_drop = on_drop
        self._on_write = on_write
        self._lock = threading.Lock()  # guards stats; the writer thread and handlers both touch them
        self._stats = InteractionStats()
        host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
        self._prefix = f"interactions-{host}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        self._seq = 0
        self._files: list[Path] = []
        self._handle: Any = None
        self._size = 0
        self._thread = threading.Thread(target=self._run, name="interaction-log-writer", daemon=True)
        self._closed = False

    def start(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._thread.start()
        logger.info("interaction log: writing to %s (rotate at %d bytes, keep %d files)",
                    self.directory, self.max_bytes, self.max_files)

    def log(self, record: dict[str, Any]) -> bool:
        """Queue one record; returns False (and counts a drop) instead of ever blocking."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            with self._lock:
                self._stats.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Write everything already queued, then stop the writer (used on SIGTERM)."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)  # blocking put is fine here: the writer is draining
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("interaction log: writer did not finish within %.1fs; %d records pending",
                             timeout, self._queue.qsize())

    def stats(self) -> dict[str, Any]:
        with self._lock:
            files = [p for p in self._files if p.exists()]
            return {
                "total": self._stats.written,
                "dropped": self._stats.dropped,
                "write_errors": self._stats.write_errors,
                "pending": self._queue.qsize(),
                "by_endpoint": dict(self._stats.by_endpoint),
                "by_decision": dict(self._stats.by_decision),
                "files": [{"name": p.name, "bytes": p.stat().st_size} for p in files],
                "directory": str(self.directory),
            }

    # --- writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            # Take whatever else is already waiting so one write+flush covers many records.
            stop = False
            while len(batch) < 512:
                try:
                    extra = self._queue.get_nowait()
                except queue.Empty:
                    break
                if extra is _STOP:
                    stop = True
                    break
                batch.append(extra)
            self._write(batch)
            if stop:
                break
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            for record in batch:
                line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
                if self._handle is None or self._size + len(line) > self.max_bytes and self._size > 0:
                    self._rotate()
                self._handle.write(line)
                self._size += len(line)
            self._handle.flush()
        except OSError:
            logger.exception("interaction log: write failed; %d records lost", len(batch))
            with self._lock:
                self._stats.write_errors += len(batch)
            self._handle = None  # reopen a fresh file next time
            return
        with self._lock:
            self._stats.written += len(batch)
            for record in batch:
                self._stats.by_endpoint[str(record.get("endpoint"))] += 1
                decision = record.get("decision")
                self._stats.by_decision["null" if decision is None else str(decision)] += 1
        if self._on_write is not None:
            self._on_write(len(batch))

    def _rotate(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._seq += 1
        path = self.directory / f"{self._prefix}-{self._seq:05d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # also when the file existed with wider permissions
        self._handle = os.fdopen(fd, "ab", buffering=1024 * 1024)
        self._size = os.fstat(fd).st_size
        with self._lock:
            self._files.append(path)
            while len(self._files) > self.max_files:
                old = self._files.pop(0)
                try:
                    old.unlink()
                    logger.info("interaction log: removed %s (more than %d files)", old.name, self.max_files)
                except FileNotFoundError:
                    pass  # a flywheel consumer may already have taken it
