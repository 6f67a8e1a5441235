"""Configuration, errors and the bounded body reader of the service (chapter 15)."""

from __future__ import annotations

import json
import logging
import unicodedata
from dataclasses import dataclass

from starlette.requests import ClientDisconnect

log = logging.getLogger("llmbook.deployment.serving.app")


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching of the server (defaults sized for one 2-core replica)."""

    max_text_chars: int = 2_000
    max_request_texts: int = 64
    max_body_bytes: int = 256_000
    #: micro-batching: texts per model call, and how long the first request waits for company;
    #: ``max_batch=1`` switches it off (each request is its own model call)
    max_batch: int = 32
    max_wait_ms: float = 5.0
    #: requests waiting for the model; when full, new requests get 503 at once.  It bounds the
    #: wait too: about queue_size / capacity seconds (so it must hold at least one micro-batch)
    queue_size: int = 32
    #: texts waiting for the model (the work, whatever the request sizes): beyond it, 503
    queue_texts: int = 256
    #: texts one API key may have waiting: beyond it, 429 (no key can fill the queue alone)
    key_queue_texts: int = 128
    #: a model call running longer than this (seconds) means a hung worker: /readyz says 503;
    #: the API's event loop not running for as long makes /healthz on the probe port say 503
    stall_s: float = 10.0
    #: per API key: sustained requests per second, and burst size
    rate_per_second: float = 200.0
    rate_burst: int = 400
    request_timeout_s: float = 30.0
    require_key: bool = True
    #: serve /docs, /redoc and /openapi.json (off: they tell anyone what the service accepts)
    docs: bool = False

    def __post_init__(self):
        small = [name for name in ("max_text_chars", "max_request_texts", "max_body_bytes",
                                   "max_batch", "queue_size", "queue_texts", "key_queue_texts",
                                   "rate_burst")
                 if getattr(self, name) < 1]
        if small:
            raise ValueError(f"ServeConfig: {', '.join(small)} must be at least 1")
        if min(self.queue_texts, self.key_queue_texts) < self.max_request_texts:
            raise ValueError(f"ServeConfig: queue_texts ({self.queue_texts}) and key_queue_texts"
                             f" ({self.key_queue_texts}) must hold a request of max_request_"
                             f"texts ({self.max_request_texts})")
        if self.stall_s <= 0:
            raise ValueError("ServeConfig: stall_s must be positive")


class StartupError(RuntimeError):
    """The server refuses to start; the message says why."""


class RequestError(Exception):
    """A request rejected with an HTTP status and a message saying what to fix."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


async def read_body(request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    too_big = RequestError(413, f"body is over {limit} bytes: send fewer or shorter texts")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or cut off by the guard's body deadline: not our fault
        raise RequestError(400, "the connection closed before the body was complete") from None
    return b"".join(chunks)


def parse_json(body: bytes, usage: str):
    """The decoded body, or a 400 :class:`RequestError`: bad syntax or encoding, nesting too
    deep for the parser, or a number too long to convert."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise RequestError(400, f"body is not valid JSON ({str(err)[:120]}): {usage}") from None
    except RecursionError:
        raise RequestError(400, f"body is nested too deeply to parse: {usage}") from None


#: Unicode categories that show nothing: controls, format characters (zero-width space,
#: joiners, direction marks) and separators.
INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def check_text(name: str, text, max_chars: int, purpose: str) -> str:
    """``text`` if it is a usable string, else a 422/413 :class:`RequestError` naming ``name``:
    not a string, a lone surrogate (cannot be encoded, so cannot be tokenized), nothing but
    invisible characters, or over ``max_chars``."""
    if not isinstance(text, str):
        raise RequestError(422, f"{name} must be a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(422, f"{name} contains a lone surrogate (an unpaired \\ud800-"
                                "\\udfff escape): send valid Unicode") from None
    if all(unicodedata.category(ch) in INVISIBLE for ch in text):
        raise RequestError(422, f"{name} is empty (or only spaces, control or zero-width "
                                f"characters): send some text {purpose}")
    if len(text) > max_chars:
        raise RequestError(413, f"{name} has {len(text)} characters; the limit is "
                                f"{max_chars}: shorten it")
    return text
