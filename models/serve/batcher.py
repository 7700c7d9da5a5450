"""Dynamic micro-batching: concurrent requests share one ONNX Runtime call.

One worker task takes what is queued, and while fewer than ``max_batch_size`` rows are gathered
and more requests are known to be on their way (``pending()``: requests being read or parsed,
not yet submitted), it waits up to ``max_wait_ms`` for them. A lone request therefore never
waits, and under load the batch fills while the previous one runs: requests arriving during
one ORT call wait in the queue for the next. A request larger than ``max_batch_size`` runs
as a batch of its own; requests are never split.

Inference runs on the event loop by default: for small models one ORT call is a few tens of
microseconds, less than handing it to a thread costs (GIL hand-offs). ``offload=True`` runs it in
a thread instead, so the loop keeps reading requests during long (millisecond) model calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

RunFn = Callable[[np.ndarray], dict[str, np.ndarray]]
log = logging.getLogger("models.serve")


Outputs = dict[str, np.ndarray]
#: called by the batcher with the request's rows of the outputs, or the exception of its batch
Deliver = Callable[[Outputs | BaseException], None]


@dataclass(slots=True)
class _Item:
    x: np.ndarray
    deliver: Deliver


class MicroBatcher:
    def __init__(
        self,
        run: RunFn,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        pending: Callable[[], int] = lambda: 0,
        on_batch: Callable[[int, float], None] = lambda rows, seconds: None,
        offload: bool = False,
    ) -> None:
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._pending = pending
        self._on_batch = on_batch
        self._queue: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._executor = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="ort")
                          if offload else None)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    def enqueue(self, x: np.ndarray, deliver: Deliver) -> None:
        """Queue ``x``; ``deliver`` gets its rows of the outputs from the batcher's loop (no
        future or task per request: the server answers straight from the callback)."""
        if self._closing or self._task is None:
            raise RuntimeError("batcher is not running")
        self._queue.append(_Item(x, deliver))
        if not self._arrived.is_set():
            self._arrived.set()

    async def submit(self, x: np.ndarray) -> Outputs:
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()

        def deliver(result: Outputs | BaseException) -> None:
            if future.done():  # the caller went away
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.enqueue(x, deliver)
        return await future

    async def stop(self) -> None:
        """Run what is queued, then stop the worker and its thread."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _take(self, items: list[_Item], rows: int) -> int:
        while self._queue and (not items or rows + len(self._queue[0].x) <= self.max_batch_size):
            item = self._queue.popleft()
            items.append(item)
            rows += len(item.x)
        return rows

    async def _gather(self) -> list[_Item]:
        items: list[_Item] = []
        rows = self._take(items, 0)
        if self.max_wait <= 0:
            return items
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while (rows < self.max_batch_size and not self._queue
               and self._pending() > 0 and not self._closing):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            timer = loop.call_later(remaining, self._arrived.set)
            try:
                await self._arrived.wait()
            finally:
                timer.cancel()
            rows = self._take(items, rows)
        return items

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            items = await self._gather()
            x = items[0].x if len(items) == 1 else np.concatenate([i.x for i in items])
            began = time.perf_counter()
            try:
                if self._executor is None:
                    outputs = self._run(x)
                else:
                    outputs = await loop.run_in_executor(self._executor, self._run, x)
            except Exception as exc:  # the callers answer it; the worker keeps going
                for item in items:
                    _deliver(item, exc)
                continue
            self._on_batch(len(x), time.perf_counter() - began)
            start = 0
            for item in items:
                end = start + len(item.x)
                _deliver(item, {k: v[start:end] for k, v in outputs.items()})
                start = end


def _deliver(item: _Item, result: Outputs | BaseException) -> None:
    try:
        item.deliver(result)
    except Exception:  # a broken callback must not stop the batcher for everyone else
        log.exception("delivering a batch result failed")
