"""Micro-batching of concurrent requests in the sentiment service (chapter 15)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from llmbook.deployment.serving.config import RequestError, ServeConfig, log
from llmbook.deployment.serving.metrics import Metrics
from llmbook.deployment.serving.predictor import Predictor


class MicroBatcher:
    """A bounded queue of requests and one worker that runs them through the model in batches."""

    def __init__(self, predictor: Predictor, config: ServeConfig, metrics: Metrics):
        self.predictor, self.config, self.metrics = predictor, config, metrics
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=config.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, texts: list[str]) -> asyncio.Future:
        """Queue ``texts``; a 503 :class:`RequestError` at once if the queue is full."""
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((texts, future))
        except asyncio.QueueFull:
            raise RequestError(503, "server is at capacity: retry shortly",
                               {"Retry-After": "1"}) from None
        self.metrics.queue_depth.set(self.queue.qsize())
        return future

    async def _next_batch(self) -> list[tuple[list[str], asyncio.Future]]:
        batch = [await self.queue.get()]
        size, deadline = len(batch[0][0]), time.monotonic() + self.config.max_wait_ms / 1e3
        while size < self.config.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = (self.queue.get_nowait() if remaining <= 0
                        else await asyncio.wait_for(self.queue.get(), remaining))
            except (asyncio.QueueEmpty, TimeoutError):
                break
            batch.append(item)
            size += len(item[0])
        return batch

    async def _work(self) -> None:
        while True:
            batch = await self._next_batch()
            self.metrics.queue_depth.set(self.queue.qsize())
            live = [(texts, future) for texts, future in batch if not future.done()]
            if live:
                await self._serve(live)

    async def _serve(self, live: list[tuple[list[str], asyncio.Future]]) -> None:
        """One model call for ``live``'s texts; if it fails, each request again on its own, so
        a text that breaks the model fails only its own request."""
        texts = [text for item, _ in live for text in item]
        self.metrics.batch_size.observe(len(texts))
        try:
            probabilities = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.predictor.predict, texts)
        except Exception as err:  # a model failure fails these requests, not the server
            if len(live) > 1:
                log.warning("a batch of %d requests failed: retrying them one by one", len(live))
                for item in live:
                    await self._serve([item])
                return
            log.exception("model call failed")
            if not live[0][1].done():
                live[0][1].set_exception(err)
            return
        start = 0
        for item, future in live:
            if not future.done():
                future.set_result(probabilities[start:start + len(item)])
            start += len(item)
