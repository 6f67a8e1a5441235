"""``POST /v1/generate``: a causal LM behind the classifier's guards, with streaming (chapter 15,
serving the models of chapters 6-8).

Body: ``{"prompt": "...", "max_new_tokens": 64, "temperature": 0, "top_k": null, "top_p":
null, "repetition_penalty": 1.0, "seed": null, "stream": false}`` (only ``prompt`` is needed).
Without ``stream`` the answer is ``{"text", "finish_reason", "tokens", "model_version"}``;
with ``"stream": true`` it is a stream of server-sent events: ``data: {"text": "..."}`` per
piece of text, then ``event: done`` with the same fields less ``text``.

Guards, after the API key and the rate limit: body size -> 413; JSON and field ranges -> 400/422;
a prompt over ``max_prompt_tokens`` tokens, or one that leaves no room in the model's context
-> 413; ``max_streams`` generations at once, beyond that 503 with ``Retry-After`` (never a
wait).  Every generation stops at ``deadline_s`` (``finish_reason: "deadline"``) and as soon
as its client disconnects (``"cancelled"``): the worker checks before every new token.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

from llmbook.deployment.manifest import ManifestError, verified_copy
from llmbook.deployment.serving.config import (
    RequestError,
    StartupError,
    check_text,
    parse_json,
)
from llmbook.generation.command import SMOLLM2, context_length, load_causal_lm
from llmbook.generation.decoding import stream_tokens, text_pieces
from llmbook.models.loading import load_generator


@dataclass(frozen=True)
class GenerateConfig:
    """Limits of ``/v1/generate`` (defaults sized for SmolLM2-135M on one 2-core replica)."""

    max_prompt_tokens: int = 512
    max_prompt_chars: int = 8_000
    #: ceiling of a request's ``max_new_tokens``, and its default
    max_new_tokens: int = 256
    default_new_tokens: int = 64
    max_temperature: float = 2.0
    #: generations running at once; a request beyond them gets 503 at once
    max_streams: int = 4
    deadline_s: float = 60.0
    max_body_bytes: int = 16_000

    def __post_init__(self):
        small = [f.name for f in fields(self) if getattr(self, f.name) <= 0]
        if small:
            raise ValueError(f"GenerateConfig: {', '.join(small)} must be positive")
        if self.default_new_tokens > self.max_new_tokens:
            raise ValueError("GenerateConfig: default_new_tokens is above max_new_tokens")


@dataclass(frozen=True)
class GenerateRequest:
    """One checked request (see :func:`parse_generate_request`)."""

    prompt: str
    max_new_tokens: int
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    seed: int | None = None
    stream: bool = False


def _field(payload: dict, name: str, kind, default, valid, requirement: str):
    value = payload.get(name, default)
    if value is None and default is None:
        return None
    is_bool = isinstance(value, bool)  # JSON true/false are ints to Python
    right_type = is_bool if kind is bool else not is_bool and isinstance(value, kind)
    if not right_type or not valid(value):
        shown = json.dumps(value)
        raise RequestError(422, f"'{name}' must be {requirement}, got "
                                f"{shown if len(shown) <= 40 else shown[:40] + '...'}")
    return value


def parse_generate_request(body: bytes, config: GenerateConfig) -> GenerateRequest:
    """The checked request, or a :class:`RequestError` (400/422) saying what to fix."""
    payload = parse_json(body, 'send {"prompt": "..."}')
    if not isinstance(payload, dict) or "prompt" not in payload:
        raise RequestError(422, 'expected an object with a \'prompt\': send {"prompt": "..."}')
    unknown = sorted(set(payload) - {f.name for f in fields(GenerateRequest)})
    if unknown:
        raise RequestError(422, f"unknown field(s) {', '.join(map(repr, unknown))}; known: "
                                f"{', '.join(f.name for f in fields(GenerateRequest))}")
    number = (int, float)
    return GenerateRequest(
        prompt=check_text("'prompt'", payload["prompt"], config.max_prompt_chars,
                          "to continue"),
        max_new_tokens=_field(payload, "max_new_tokens", int, config.default_new_tokens,
                              lambda v: 1 <= v <= config.max_new_tokens,
                              f"an integer from 1 to {config.max_new_tokens}"),
        temperature=float(_field(payload, "temperature", number, 0.0,
                                 lambda v: 0 <= v <= config.max_temperature,
                                 f"a number from 0 (greedy) to {config.max_temperature}")),
        top_k=_field(payload, "top_k", int, None, lambda v: v >= 0, "null or an integer >= 0"),
        top_p=_field(payload, "top_p", number, None, lambda v: 0 < v <= 1,
                     "null or a number in (0, 1]"),
        repetition_penalty=float(_field(payload, "repetition_penalty", number, 1.0,
                                        lambda v: 0 < v <= 10, "a number in (0, 10]")),
        seed=_field(payload, "seed", int, None, lambda v: v >= 0, "null or an integer >= 0"),
        stream=_field(payload, "stream", bool, False, lambda v: True, "true or false"))


class TextGenerator:
    """Tokenizer and causal LM: ``'smollm2'`` (packaged) or a directory with a sha256 manifest."""

    def __init__(self, name: str | Path):
        name = copy = str(name)
        try:
            if name == SMOLLM2:
                self.tokenizer, self.model = load_generator()
                self.version = SMOLLM2
            else:  # loaded from a copy hashed as it was made: the bytes checked are loaded
                with verified_copy(name) as verified:
                    copy = str(verified.path)
                    self.tokenizer, self.model = load_causal_lm(copy)
                self.version = Path(name).name
        except SystemExit as err:  # load_causal_lm's one-line message
            message = str(err).removeprefix("error: ")
            raise StartupError(message.replace(copy, name)) from None
        except ManifestError as err:
            raise StartupError(f"{name}: {err}") from None
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self.context = context_length(self.model.config)
        eos = self.model.generation_config.eos_token_id
        self.eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = {self.eos} if isinstance(self.eos, int) else set(self.eos or [])

    def encode(self, request: GenerateRequest, max_prompt_tokens: int):
        """The prompt's ids ``(1, length)`` (in the chat template if the model has one), or a
        413 :class:`RequestError` when it is too long."""
        prompt = request.prompt
        if self.chat:
            prompt = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True,
                tokenize=False)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=not self.chat
                             ).input_ids
        length = ids.shape[1]
        if length > max_prompt_tokens:
            raise RequestError(413, f"the prompt has {length} tokens; the limit is "
                                    f"{max_prompt_tokens}: shorten it")
        if self.context is not None and length + request.max_new_tokens > self.context:
            raise RequestError(413, f"the prompt ({length} tokens) and max_new_tokens "
                                    f"({request.max_new_tokens}) exceed the model's context "
                                    f"of {self.context} tokens")
        return ids

    def tokens(self, ids, request: GenerateRequest):
        """The book's decoding loop (:func:`llmbook.generation.decoding.stream_tokens`)."""
        return stream_tokens(self.model, ids, request.max_new_tokens,
                             do_sample=request.temperature > 0,
                             temperature=request.temperature or 1.0, top_k=request.top_k,
                             top_p=request.top_p, repetition_penalty=request.repetition_penalty,
                             seed=request.seed, eos_token_id=self.eos)


class Generation:
    """One generation, run in a worker thread; its text pieces come out on an asyncio queue.

    ``finish_reason`` ends as ``"stop"`` (an end-of-sequence token), ``"length"``
    (``max_new_tokens``), ``"deadline"`` or ``"cancelled"`` (:meth:`cancel`, called when the
    client goes away).  ``on_token(self)`` is called once per new token and ``on_end(self)``
    once at the end, both from the worker thread.
    """

    def __init__(self, generator: TextGenerator, ids, request: GenerateRequest, deadline_s: float,
                 on_token, on_end):
        self.generator, self.ids, self.request = generator, ids, request
        self.deadline = time.monotonic() + deadline_s
        self.on_token, self.on_end = on_token, on_end
        self.cancelled = threading.Event()
        self.finish_reason, self.tokens = "length", 0
        self.started = time.perf_counter()
        self.first_token_at = self.ended_at = None
        self.queue: asyncio.Queue = asyncio.Queue()

    def cancel(self) -> None:
        self.cancelled.set()

    def _checked_tokens(self):
        for token in self.generator.tokens(self.ids, self.request):
            self.tokens += 1
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            self.on_token(self)
            yield token
            if int(token[0]) in self.generator.eos_ids:
                self.finish_reason = "stop"
                return
            if self.cancelled.is_set():
                self.finish_reason = "cancelled"
                return
            if time.monotonic() > self.deadline:
                self.finish_reason = "deadline"
                return

    def _work(self, loop) -> None:
        def send(kind, value=None):
            try:
                loop.call_soon_threadsafe(self.queue.put_nowait, (kind, value))
            except RuntimeError:  # the event loop has closed (server shutdown)
                self.cancel()
        try:
            for piece in text_pieces(self.generator.tokenizer, self._checked_tokens()):
                send("text", piece)
                if self.cancelled.is_set():
                    self.finish_reason = "cancelled"
                    break
            send("end")
        except Exception as err:  # reported to the client; the server goes on
            send("error", err)
        finally:
            self.ended_at = time.perf_counter()
            self.on_end(self)

    def start(self, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        executor.submit(self._work, loop)

    async def pieces(self):
        """The text pieces, as the worker produces them; cancels the worker if abandoned."""
        try:
            while True:
                kind, value = await self.queue.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            self.cancel()

    def decode_rate(self) -> float | None:
        """New tokens per second after the first one (``None`` below two tokens)."""
        if self.tokens < 2 or self.ended_at is None:
            return None
        return (self.tokens - 1) / max(self.ended_at - self.first_token_at, 1e-9)

    def summary(self) -> dict:
        return {"finish_reason": self.finish_reason, "tokens": self.tokens,
                "model_version": self.generator.version}
