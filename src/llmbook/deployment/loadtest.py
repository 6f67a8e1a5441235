"""Load-testing the sentiment API and planning capacity (chapter 15; ``llmbook bench serve``).

:class:`ServerProcess` starts ``llmbook serve`` in a child process on 127.0.0.1 (a free port),
so the server and the load generator do not share a Python interpreter.  :func:`closed_loop`
keeps ``concurrency`` requests in flight for a fixed time with one httpx ``AsyncClient``;
:func:`open_loop` fires requests at a fixed rate regardless of answers (the overload test), with
at most ``max_in_flight`` outstanding so the client's memory stays bounded too.  Both report
requests/s, p50/p95/p99 latency of the successful requests and counts by status.
:func:`replicas_needed` turns a measured per-replica capacity into a replica count; the same
for ``/v1/generate`` streams is in :mod:`llmbook.deployment.stream_load`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``llmbook serve`` in a child process (``start``/``stop``, or use it as a context manager)."""

    def __init__(self, model_dir: str | Path | None, *args: str, startup_timeout: float = 300):
        self.key, self.port, self.probe_port = secrets.token_urlsafe(24), free_port(), free_port()
        while self.probe_port == self.port:
            self.probe_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.probe_url = f"http://127.0.0.1:{self.probe_port}"  # /healthz, /readyz, /metrics
        model = ["--model", str(model_dir)] if model_dir is not None else []
        self.command = [sys.executable, "-m", "llmbook", "serve", *model,
                        "--port", str(self.port), "--probe-port", str(self.probe_port), *args]
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        """What the server has logged so far (masked request texts, never keys)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def start(self) -> ServerProcess:
        """Start the server and wait until ``/readyz`` answers 200."""
        env = {**os.environ, "LLMBOOK_API_KEYS": self.key}
        # the server's log goes to a file: an unread pipe would fill up and block the server
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(self.command, env=env, stdout=subprocess.DEVNULL,
                                        stderr=self.log, text=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited at start: {self.log.read()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not ready after {self.startup_timeout} s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def summarise(latencies: Sequence[float], statuses: Sequence[int | str], seconds: float) -> dict:
    """Requests/s of successful requests, their latency percentiles (ms), counts by status."""
    ok = np.asarray(latencies) * 1e3
    percentile = (lambda q: float(np.percentile(ok, q))) if len(ok) else (lambda q: float("nan"))
    return {"requests_per_s": len(ok) / seconds, "p50_ms": percentile(50),
            "p95_ms": percentile(95), "p99_ms": percentile(99),
            "status_counts": dict(Counter(str(s) for s in statuses))}


async def _post(client: httpx.AsyncClient, text: str) -> tuple[int | str, float]:
    start = time.perf_counter()
    try:
        response = await client.post("/v1/sentiment", json={"text": text})
        return response.status_code, time.perf_counter() - start
    except httpx.HTTPError as err:
        return type(err).__name__, time.perf_counter() - start


async def closed_loop(url: str, headers: dict, texts: Sequence[str], concurrency: int,
                      seconds: float) -> dict:
    """``concurrency`` clients each sending one text after another for ``seconds``."""
    latencies, statuses = [], []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30,
                                 limits=limits) as client:
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()

        async def user(offset: int):
            i = offset
            while time.perf_counter() < deadline:
                status, latency = await _post(client, texts[i % len(texts)])
                statuses.append(status)
                if status == 200:
                    latencies.append(latency)
                i += concurrency

        await asyncio.gather(*(user(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"concurrency": concurrency, **summarise(latencies, statuses, elapsed)}


async def open_loop(url: str, headers: dict, texts: Sequence[str], rate: float, seconds: float,
                    max_in_flight: int = 512) -> dict:
    """Requests at ``rate`` per second for ``seconds``, whatever the server's answers."""
    latencies, statuses, skipped = [], [], 0
    gate = asyncio.Semaphore(max_in_flight)
    limits = httpx.Limits(max_connections=max_in_flight)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30,
                                 limits=limits) as client:

        async def one(text: str):
            async with gate:
                status, latency = await _post(client, text)
            statuses.append(status)
            if status == 200:
                latencies.append(latency)

        tasks, start = [], time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            if gate.locked():
                skipped += 1  # the client, too, refuses to queue without bound
                continue
            tasks.append(asyncio.create_task(one(texts[i % len(texts)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"rate": rate, "client_skipped": skipped, **summarise(latencies, statuses, elapsed)}


def run_sync(coroutine):
    """Run ``coroutine`` to completion from synchronous code, also inside Jupyter (whose event
    loop is already running in this thread): it gets its own loop in a worker thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def replicas_needed(traffic: float | np.ndarray, per_replica: float, utilisation: float = 0.7,
                    minimum: int = 2) -> np.ndarray:
    """Replicas for ``traffic`` requests/s when one replica serves ``per_replica`` requests/s.

    Replicas run at most at ``utilisation`` of their measured capacity (headroom for bursts and
    for losing a node) and never fewer than ``minimum`` (one can fail or be rolled).
    """
    if per_replica <= 0 or not 0 < utilisation <= 1:
        raise ValueError("per_replica must be positive and utilisation in (0, 1]")
    needed = np.ceil(np.asarray(traffic, dtype=float) / (per_replica * utilisation))
    return np.maximum(needed, minimum).astype(int)


#: requests/s per key that no load test reaches: the limiter stays out of the measurement
UNLIMITED_RATE = 1_000_000


def serve_benchmark(model_dir: str | Path, texts: Sequence[str],
                    concurrency: Sequence[int] = (1, 8, 32), seconds: float = 10.0,
                    overload_seconds: float = 10.0) -> dict:
    """Micro-batching off vs on at each concurrency, then an overload phase at 10x capacity.

    Returns ``{"levels": [...], "overload": {...}}``; each level row says which mode it ran in.
    The per-key rate limit is lifted (``--rate-limit``, :data:`UNLIMITED_RATE`): one client key
    sends all the load, and the test measures the model and its queue, not the limiter.
    """
    levels, unlimited = [], ("--rate-limit", str(UNLIMITED_RATE))
    for mode, max_batch in (("off", "1"), ("on", "32")):
        with ServerProcess(model_dir, "--max-batch", max_batch, *unlimited) as server:
            run_sync(closed_loop(server.url, server.headers, texts, 2, 1.0))  # warm-up
            for users in concurrency:
                row = run_sync(closed_loop(server.url, server.headers, texts, users, seconds))
                levels.append({"micro_batching": mode, **row})
    capacity = max(row["requests_per_s"] for row in levels if row["micro_batching"] == "on")
    with ServerProcess(model_dir, "--max-batch", "32", *unlimited) as server:
        overload = run_sync(open_loop(server.url, server.headers, texts,
                                         10 * capacity, overload_seconds))
        overload["server_alive"] = server.alive()
        overload["healthy_after"] = (
            httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
            and run_sync(closed_loop(server.url, server.headers, texts, 1, 1.0))
            ["status_counts"].get("200", 0) > 0)
    unexpected = {s: n for s, n in overload["status_counts"].items() if s not in ("200", "503")}
    overload.update(capacity_requests_per_s=capacity, unexpected_statuses=unexpected)
    return {"levels": levels, "overload": overload, "seconds_per_level": seconds,
            "cpu_count": os.cpu_count()}


def capacity_from(results: dict) -> float:
    """Measured requests/s of one replica: the best micro-batched level."""
    return max(r["requests_per_s"] for r in results["levels"] if r["micro_batching"] == "on")


def batching_gain(results: dict) -> tuple[float, float, float]:
    """At the highest concurrency: requests/s ratio on/off, and p99 (ms) off and on."""
    top = max(r["concurrency"] for r in results["levels"])
    rows = {r["micro_batching"]: r for r in results["levels"] if r["concurrency"] == top}
    return (rows["on"]["requests_per_s"] / rows["off"]["requests_per_s"],
            rows["off"]["p99_ms"], rows["on"]["p99_ms"])
