"""Load tests of ``POST /v1/generate`` (chapter 15): :func:`stream_generate` streams one
answer; :func:`stream_loop` keeps ``concurrency`` clients streaming for a fixed time and reports
time to first token (p50/p99) and aggregate tokens/s; :func:`stream_benchmark` runs it against
``llmbook serve --generate`` at several concurrency levels.  :func:`read_metric` and
:func:`wait_for_metric` read the server's Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from llmbook.deployment.loadtest import ServerProcess, run_sync
from llmbook.deployment.serving.streaming import sse_events


def read_metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 if absent), e.g.
    ``read_metric(metrics, "llmbook_generations_total", finish_reason="cancelled")``."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_for_metric(client: httpx.Client, name: str, value: float, timeout_s: float = 60.0,
                    **labels: str) -> float:
    """Poll ``/metrics`` of the server behind ``client`` until the metric equals ``value`` (or
    ``timeout_s`` has passed) and return its last reading: e.g. wait for
    ``llmbook_active_generations`` to reach 0 after a client hung up, however long a busy
    machine takes to get there."""
    end = time.monotonic() + timeout_s
    while True:
        now = read_metric(client.get("/metrics").text, name, **labels)
        if now == value or time.monotonic() > end:
            return now
        time.sleep(0.1)


def stream_generate(client: httpx.Client, body: dict, echo: bool = True) -> dict:
    """Stream one ``/v1/generate`` answer (printing it as it comes with ``echo``): its text
    ``pieces``, the ``done`` event, seconds to the first piece (``ttft_s``) and to the end."""
    start, first, pieces, done = time.perf_counter(), None, [], {}
    with client.stream("POST", "/v1/generate", json=body | {"stream": True}) as response:
        response.raise_for_status()
        for event, data in sse_events(response.iter_lines()):
            if event == "message":
                first = first or time.perf_counter() - start
                pieces.append(data["text"])
                if echo:
                    print(data["text"], end="", flush=True)
            else:
                done = data
    return {"pieces": pieces, "done": done, "ttft_s": first,
            "total_s": time.perf_counter() - start}


async def _stream(client: httpx.AsyncClient, body: dict) -> tuple[int | str, float | None, int]:
    """One streamed generation: status, seconds to the first text event, tokens generated."""
    start, first, tokens, event = time.perf_counter(), None, 0, "message"
    try:
        async with client.stream("POST", "/v1/generate", json=body | {"stream": True}) as r:
            if r.status_code != 200:
                await r.aread()
                return r.status_code, None, 0
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    if event == "message" and first is None:
                        first = time.perf_counter() - start
                    if event == "done":
                        tokens = json.loads(line.removeprefix("data: "))["tokens"]
                    event = "message"
        return 200, first, tokens
    except httpx.HTTPError as err:
        return type(err).__name__, None, 0


async def stream_loop(url: str, headers: dict, prompts: Sequence[str], concurrency: int,
                      seconds: float, max_new_tokens: int = 32) -> dict:
    """``concurrency`` clients each streaming one generation after another for ``seconds``:
    time to first token (p50/p99, ms), aggregate tokens/s, counts by status."""
    ttfts, tokens, statuses = [], [], []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120,
                                 limits=limits) as client:
        deadline = start = time.perf_counter()
        deadline += seconds

        async def user(offset: int):
            i = offset
            while time.perf_counter() < deadline:
                body = {"prompt": prompts[i % len(prompts)], "max_new_tokens": max_new_tokens}
                status, first, count = await _stream(client, body)
                statuses.append(status)
                if first is not None:
                    ttfts.append(first * 1e3)
                tokens.append(count)
                i += concurrency

        await asyncio.gather(*(user(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    percentile = (lambda q: float(np.percentile(ttfts, q))) if ttfts else (lambda q: np.nan)
    return {"concurrency": concurrency, "streams": len(statuses),
            "ttft_p50_ms": percentile(50), "ttft_p99_ms": percentile(99),
            "tokens_per_s": sum(tokens) / elapsed,
            "status_counts": dict(Counter(str(s) for s in statuses))}


def stream_benchmark(generator: str | Path, prompts: Sequence[str],
                     concurrency: Sequence[int] = (1, 4, 16), seconds: float = 20.0,
                     max_new_tokens: int = 32) -> dict:
    """``llmbook serve --generate GENERATOR`` in a child process, with as many generation
    slots as the highest concurrency, loaded by :func:`stream_loop` at each level."""
    slots = str(max(concurrency))
    with ServerProcess(None, "--generate", str(generator), "--max-streams", slots,
                       startup_timeout=300) as server:
        run_sync(stream_loop(server.url, server.headers, prompts, 1, 1.0, 4))  # warm-up
        levels = [run_sync(stream_loop(server.url, server.headers, prompts, users, seconds,
                                       max_new_tokens)) for users in concurrency]
        alive = server.alive()
    return {"levels": levels, "server_alive": alive, "seconds_per_level": seconds,
            "max_new_tokens": max_new_tokens, "cpu_count": os.cpu_count()}
