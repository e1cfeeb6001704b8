"""Server-side batching: requests that arrive together share one ONNX Runtime call.

A batch closes when it holds ``max_videos`` videos, or when no request is on its way (one
whose body is still being read or checked) or ``max_wait_s`` has passed since the batch
opened. So a lone client waits for nobody, and concurrent ones are gathered while the
previous call runs. Inference runs in one worker thread: the event loop keeps reading
requests meanwhile, and calls never overlap (ONNX Runtime spreads each over its own
threads).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

Infer = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass
class _Job:
    inputs: dict[str, np.ndarray]
    videos: int
    future: asyncio.Future[np.ndarray]


@dataclass
class BatchStats:
    calls: int = 0
    videos: int = 0
    requests: int = 0
    largest: int = 0


class MicroBatcher:
    def __init__(self, infer: Infer, max_videos: int = 256, max_wait_s: float = 0.005) -> None:
        self._infer = infer
        self.max_videos = max_videos
        self.max_wait_s = max_wait_s
        self._pending: collections.deque[_Job] = collections.deque()
        self._wake = asyncio.Event()
        self._coming = 0  # requests announced by expect() and not yet submitted
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yt8m-infer")
        self._task: asyncio.Task[None] | None = None
        self.stats = BatchStats()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))

    @contextlib.contextmanager
    def expect(self) -> Iterator[None]:
        """Around a request's reading and checking (not its submit): an open batch waits
        for it."""
        self._coming += 1
        try:
            yield
        finally:
            self._coming -= 1
            self._wake.set()

    async def submit(self, inputs: dict[str, np.ndarray], videos: int) -> np.ndarray:
        """Probabilities (videos, classes) of these inputs, computed in some batch."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(inputs, videos, future))
        self._wake.set()
        return await future

    async def _next(self, timeout: float | None) -> bool:
        """Wait until something is pending or a request settles; False on timeout."""
        self._wake.clear()
        if self._pending:
            return True
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _gather(self) -> list[_Job]:
        while not self._pending:
            await self._next(None)
        loop = asyncio.get_running_loop()
        batch = [self._pending.popleft()]
        count = batch[0].videos
        deadline = loop.time() + self.max_wait_s
        while count < self.max_videos:
            if self._pending:
                if count + self._pending[0].videos > self.max_videos:
                    break  # opens the next batch
                job = self._pending.popleft()
                batch.append(job)
                count += job.videos
                continue
            remaining = deadline - loop.time()
            if self._coming <= 0 or remaining <= 0:  # nobody on the way, or waited enough
                break
            await self._next(remaining)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            batch = [job for job in batch if not job.future.done()]  # client gone
            if not batch:
                continue
            names = list(batch[0].inputs)
            feed = (batch[0].inputs if len(batch) == 1 else
                    {n: np.concatenate([job.inputs[n] for job in batch]) for n in names})
            try:
                probabilities = await loop.run_in_executor(self._executor, self._infer, feed)
            except Exception as error:  # handed to each waiting request, which answers 500
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            videos = sum(job.videos for job in batch)
            self.stats.calls += 1
            self.stats.videos += videos
            self.stats.requests += len(batch)
            self.stats.largest = max(self.stats.largest, videos)
            start = 0
            for job in batch:
                if not job.future.done():
                    job.future.set_result(probabilities[start : start + job.videos])
                start += job.videos
