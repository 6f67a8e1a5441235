"""The ``/v1/generate`` route: one JSON answer, or server-sent events (chapter 15; the request
format and limits are in :mod:`llmbook.deployment.serving.generation`)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from fastapi import Request
from fastapi.responses import StreamingResponse

from llmbook.deployment.serving.config import RequestError, log, read_body
from llmbook.deployment.serving.generation import (
    GenerateConfig,
    Generation,
    TextGenerator,
    parse_generate_request,
)
from llmbook.deployment.serving.metrics import Metrics

ENDPOINT = "/v1/generate"


def sse(data: dict, event: str | None = None) -> str:
    """One server-sent event: an optional ``event:`` line and a JSON ``data:`` line."""
    return (f"event: {event}\n" if event else "") + f"data: {json.dumps(data)}\n\n"


def sse_events(lines):
    """``(event, data)`` pairs from the lines of a server-sent event stream (the client side of
    :func:`sse`; ``event`` is ``"message"`` when the event has no name)."""
    event = "message"
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))
            event = "message"


class GenerationSlots:
    """At most ``capacity`` generations at once; :meth:`take` refuses (503) instead of waiting."""

    def __init__(self, capacity: int, metrics: Metrics):
        self.capacity, self.metrics, self.active = capacity, metrics, 0
        self.lock = threading.Lock()  # released from the worker threads
        metrics.generation_capacity.set(capacity)

    def take(self) -> None:
        with self.lock:
            if self.active >= self.capacity:
                raise RequestError(503, f"all {self.capacity} generation slots are busy: retry "
                                        "shortly", {"Retry-After": "1"})
            self.active += 1
            self.metrics.active_generations.set(self.active)

    def release(self, generation: Generation) -> None:
        with self.lock:
            self.active -= 1
            self.metrics.active_generations.set(self.active)
        self.metrics.generations.labels(generation.finish_reason).inc()
        rate = generation.decode_rate()
        if rate is not None:
            self.metrics.decode_rate.observe(rate)


async def _events(generation: Generation):
    try:
        async for piece in generation.pieces():
            yield sse({"text": piece})
        yield sse(generation.summary(), "done")
    except Exception:  # the stream has started: report in-band, keep the server up
        log.exception("generation failed")
        yield sse({"detail": "internal error"}, "error")


async def _collect(generation: Generation, request: Request) -> str:
    pieces = []
    async for piece in generation.pieces():
        pieces.append(piece)
        if await request.is_disconnected():
            generation.cancel()
    return "".join(pieces)


def add_generate_route(app, generator: TextGenerator, config: GenerateConfig, guard, reply,
                       metrics: Metrics, state: dict) -> None:
    """``POST /v1/generate`` on ``app``; ``guard(request)`` checks the key and rate limit."""
    executor = ThreadPoolExecutor(config.max_streams, thread_name_prefix="llmbook-generate")
    slots = GenerationSlots(config.max_streams, metrics)

    def on_token(generation: Generation) -> None:
        metrics.generated_tokens.inc()
        if generation.tokens == 1:
            metrics.time_to_first_token.observe(generation.first_token_at - generation.started)

    @app.post(ENDPOINT)
    async def generate(request: Request):
        try:
            guard(request)
            body = parse_generate_request(await read_body(request, config.max_body_bytes),
                                          config)
            if not state["ready"]:
                raise RequestError(503, "model is still loading: retry shortly",
                                   {"Retry-After": "1"})
            ids = generator.encode(body, config.max_prompt_tokens)
            slots.take()
        except RequestError as err:
            return reply(ENDPOINT, err.status, {"detail": err.message}, err.headers)
        generation = Generation(generator, ids, body, config.deadline_s, on_token,
                                slots.release)
        generation.start(executor)
        if body.stream:
            metrics.requests.labels(ENDPOINT, "200").inc()
            return StreamingResponse(_events(generation), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            text = await _collect(generation, request)
        except Exception:  # never let one request take the server down
            log.exception("generation failed")
            return reply(ENDPOINT, 500, {"detail": "internal error"})
        return reply(ENDPOINT, 200, {"text": text, **generation.summary()})

    app.state.generator, app.state.generation_executor = generator, executor

