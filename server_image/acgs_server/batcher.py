"""Dynamic batching: concurrent requests share one generate call.

Requests wait in an asyncio queue. One collector task takes the first waiting request, then up to
`max_batch_size - 1` more that arrive within `max_wait_s`, and hands the prompts to a single
worker thread. While that thread generates, the event loop keeps accepting and queueing requests,
so under load the next batch is already full when the current one finishes (pipelining). One
worker thread because torch already spreads one generate over all intra-op threads; two
concurrent generates would only fight for the same cores.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
    ) -> None:
        self._generate = generate
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._on_queue_depth = on_queue_depth
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._collect_forever(), name="batch-collector")

    async def submit(self, prompt: str) -> str:
        """Queue one prompt and wait for its generated text (raises what generate raised)."""
        if self._stopping or self._task is None:
            raise BatcherStopped("server is shutting down")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(prompt, future))
        return await future

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the collector and the worker thread."""
        self._stopping = True
        if self._task is not None:
            deadline = time.monotonic() + timeout
            while not self._queue.empty() and time.monotonic() < deadline:
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
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            if self._on_queue_depth is not None:
                self._on_queue_depth(self._queue.qsize())
            # A client that disconnected has its handler (and future) cancelled: skip its work.
            live = [item for item in batch if not item.future.done()]
            if live:
                await self._run_batch(loop, live)

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
        if self._on_batch is not None:
            self._on_batch(len(batch), time.perf_counter() - started)
        for item, text in zip(batch, texts):
            if not item.future.done():
                item.future.set_result(text)
