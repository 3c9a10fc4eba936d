"""Dynamic batching: concurrent requests share one generate call, and the model never waits.

Requests wait in a queue. One collector task takes the first waiting request, then up to
`max_batch_size - 1` more, and hands the prompts to a worker thread that calls `generate`.

Pipelining (`max_in_flight`, 2 for the model-process backend): the collector does not wait for a
batch to come back before sending the next. While batch N generates, batch N+1 is formed and
already queued at the model, so the model starts N+1 the moment N ends instead of idling through
the reply → event loop → collect → send round trip (profile: the model process waited ~9 % of
the time with one batch in flight). While the model is busy, a forming batch keeps filling until
it is full or the model runs dry, since sending it earlier would only make it wait at the model;
`max_wait_s` bounds the wait only when the model is idle. An in-process backend keeps
`max_in_flight=1`: two generates in one process would only fight for the same GIL and cores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

logger = logging.getLogger(__name__)

GenerateFn = Callable[[Sequence[str]], list[str]]


class BatcherStopped(RuntimeError):
    """The server is shutting down and takes no new work."""


@dataclass(slots=True)
class _Pending:
    prompt: str
    future: asyncio.Future[str]


class DynamicBatcher:
    def __init__(
        self,
        generate: GenerateFn,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int, float], None] | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
        max_in_flight: int = 1,
    ) -> None:
        self._generate = generate
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_in_flight = max(1, max_in_flight)
        self._on_batch = on_batch
        self._on_queue_depth = on_queue_depth
        self._queue: deque[_Pending] = deque()
        # Set whenever the collector may have something new to decide: a request arrived or a
        # batch came back. One Event instead of a Queue keeps submit() to an append and a set().
        self._wake = asyncio.Event()
        self._in_flight = 0
        self._forming: list[_Pending] = []  # taken from the queue, not yet handed to a worker
        self._batches: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="generate")
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._collect_forever(), name="batch-collector")

    async def submit(self, prompt: str) -> str:
        """Queue one prompt and wait for its generated text (raises what generate raised)."""
        if self._stopping or self._task is None:
            raise BatcherStopped("server is shutting down")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(prompt, future))
        self._wake.set()
        return await future

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued and in flight, then stop the collector and the worker threads."""
        self._stopping = True
        if self._task is not None:
            deadline = time.monotonic() + timeout
            while (self._queue or self._forming or self._in_flight) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self._in_flight >= self.max_in_flight or not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch = self._forming = [self._queue.popleft()]
            await self._fill(loop, batch)
            self._forming = []
            if self._on_queue_depth is not None:
                self._on_queue_depth(len(self._queue))
            # A client that disconnected has its handler (and future) cancelled: skip its work.
            live = [item for item in batch if not item.future.done()]
            if live:
                self._in_flight += 1
                task = loop.create_task(self._run_batch(loop, live))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)

    async def _fill(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        deadline = loop.time() + self.max_wait_s
        while True:
            while self._queue and len(batch) < self.max_batch_size:
                batch.append(self._queue.popleft())
            if len(batch) >= self.max_batch_size:
                return
            # Model busy (another batch in flight): keep filling until full or it runs dry.
            remaining = None if self._in_flight else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            texts = await loop.run_in_executor(self._executor, self._generate, [item.prompt for item in batch])
            if len(texts) != len(batch):
                raise RuntimeError(f"generate returned {len(texts)} texts for {len(batch)} prompts")
        except Exception as error:  # noqa: BLE001 - every waiter must learn about the failure
            logger.exception("batched generate failed for %d requests", len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        finally:
            self._in_flight -= 1
            self._wake.set()
        if self._on_batch is not None:
            self._on_batch(len(batch), time.perf_counter() - started)
        for item, text in zip(batch, texts):
            if not item.future.done():
                item.future.set_result(text)
