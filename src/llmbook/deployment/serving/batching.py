"""Micro-batching of concurrent requests in the sentiment service (chapter 15).

Requests wait in one queue, bounded three ways: in requests (``queue_size``), in texts
(``queue_texts``; beyond either, 503 with a ``Retry-After`` estimated from the measured compute
time per text) and per API key (``key_queue_texts``; beyond it 429, so one key cannot fill the
queue for everyone).  One worker takes requests in arrival order into batches of at most
``max_batch`` texts -- a hard limit: a request with more texts is run in several model calls --
waiting at most ``max_wait_ms`` for company.  Time in the queue and time in the model are
separate histograms.  The worker records when each model call starts and ends (its heartbeat):
:meth:`MicroBatcher.stalled` says why it cannot answer (a call running for more than
``stall_s`` seconds, or a dead worker), and readiness turns 503 on it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from llmbook.deployment.serving.config import RequestError, ServeConfig, log
from llmbook.deployment.serving.metrics import Metrics
from llmbook.deployment.serving.predictor import Predictor


@dataclass
class Job:
    """One request's texts, waiting for the model."""

    texts: list[str]
    future: asyncio.Future
    key: str = "anonymous"
    queued_at: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """A bounded queue of requests and one worker that runs them through the model in batches."""

    def __init__(self, predictor: Predictor, config: ServeConfig, metrics: Metrics):
        self.predictor, self.config, self.metrics = predictor, config, metrics
        self.jobs: deque[Job] = deque()
        self.queued_texts = 0
        self.queued_by_key: Counter[str] = Counter()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._worker: asyncio.Task | None = None
        #: heartbeat: when the running model call started (None: idle), the last success
        self.busy_since: float | None = None
        self.last_success: float | None = None
        self.seconds_per_text = 0.0  # moving average of compute time, for Retry-After

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def stalled(self) -> str | None:
        """Why the worker cannot answer now (hung in a model call, or not running), or None."""
        if self._worker is None or self._worker.done():
            return "the model worker is not running"
        busy_since = self.busy_since
        if busy_since is not None and time.monotonic() - busy_since > self.config.stall_s:
            return (f"a model call has been running for {time.monotonic() - busy_since:.1f} s "
                    f"(limit {self.config.stall_s:g} s)")
        return None

    def submit(self, texts: list[str], key: str = "anonymous") -> asyncio.Future:
        """Queue ``texts`` for API key ``key``; a 429 :class:`RequestError` at once if the key
        has too many texts waiting, a 503 if the queue is full."""
        config, count = self.config, len(texts)
        if self.queued_by_key[key] + count > config.key_queue_texts:
            raise RequestError(429, f"this API key has {self.queued_by_key[key]} texts waiting; "
                                    f"the limit per key is {config.key_queue_texts}: wait for "
                                    "answers before sending more", self._retry_after(key))
        if (len(self.jobs) >= config.queue_size
                or self.queued_texts + count > config.queue_texts):
            raise RequestError(503, "server is at capacity: retry shortly", self._retry_after())
        future = asyncio.get_running_loop().create_future()
        self.jobs.append(Job(texts, future, key))
        self.queued_texts += count
        self.queued_by_key[key] += count
        self._gauges()
        self._arrived.set()
        return future

    def _retry_after(self, key: str | None = None) -> dict:
        """``Retry-After``: seconds to work off what is queued (of ``key``, or all), 1 to 30."""
        texts = self.queued_texts if key is None else self.queued_by_key[key]
        return {"Retry-After": str(min(30, max(1, math.ceil(texts * self.seconds_per_text))))}

    def _gauges(self) -> None:
        self.metrics.queue_depth.set(len(self.jobs))
        self.metrics.queued_texts.set(self.queued_texts)

    def _pop(self) -> Job:
        job = self.jobs.popleft()
        self.queued_texts -= len(job.texts)
        self.queued_by_key[job.key] -= len(job.texts)
        if not self.queued_by_key[job.key]:
            del self.queued_by_key[job.key]
        self.metrics.queue_time.observe(time.monotonic() - job.queued_at)
        self._gauges()
        return job

    async def _wait_for_jobs(self, timeout: float | None) -> bool:
        while not self.jobs:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return False
        return True

    async def _next_batch(self) -> list[Job]:
        """Jobs in arrival order, at most ``max_batch`` texts together (a bigger job alone)."""
        await self._wait_for_jobs(None)
        batch = [self._pop()]
        size, deadline = len(batch[0].texts), time.monotonic() + self.config.max_wait_ms / 1e3
        while size < self.config.max_batch:
            remaining = deadline - time.monotonic()
            if not self.jobs and (remaining <= 0 or not await self._wait_for_jobs(remaining)):
                break
            if size + len(self.jobs[0].texts) > self.config.max_batch:
                break  # it starts the next batch: no model call over max_batch texts
            batch.append(self._pop())
            size += len(batch[-1].texts)
        return batch

    async def _work(self) -> None:
        while True:
            batch = await self._next_batch()
            live = [job for job in batch if not job.future.done()]
            if live:
                await self._serve(live)

    async def _serve(self, live: list[Job]) -> None:
        """The model on ``live``'s texts; if that fails, each request again on its own, so a
        text that breaks the model fails only its own request."""
        texts = [text for job in live for text in job.texts]
        try:
            probabilities = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._predict, texts)
        except Exception as err:  # a model failure fails these requests, not the server
            if len(live) > 1:
                log.warning("a batch of %d requests failed: retrying them one by one", len(live))
                for job in live:
                    await self._serve([job])
                return
            log.exception("model call failed")
            if not live[0].future.done():
                live[0].future.set_exception(err)
            return
        start = 0
        for job in live:
            if not job.future.done():
                job.future.set_result(probabilities[start:start + len(job.texts)])
            start += len(job.texts)

    def _predict(self, texts: list[str]):
        """In the model thread: ``texts`` in model calls of at most ``max_batch``, timed."""
        step, parts = self.config.max_batch, []
        for start in range(0, len(texts), step):
            chunk = texts[start:start + step]
            self.metrics.batch_size.observe(len(chunk))
            self.busy_since = began = time.monotonic()
            try:
                parts.append(self.predictor.predict(chunk))
            finally:
                self.busy_since, seconds = None, time.monotonic() - began
                self.metrics.compute_time.observe(seconds)
            self.last_success = time.monotonic()
            self.metrics.last_success.set_to_current_time()
            per_text = seconds / len(chunk)
            self.seconds_per_text = (0.8 * self.seconds_per_text + 0.2 * per_text
                                     if self.seconds_per_text else per_text)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
