"""Configuration and errors of the sentiment service (chapter 15)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
    #: per API key: sustained requests per second, and burst size
    rate_per_second: float = 200.0
    rate_burst: int = 400
    request_timeout_s: float = 30.0
    require_key: bool = True

    def __post_init__(self):
        small = [name for name in ("max_text_chars", "max_request_texts", "max_body_bytes",
                                   "max_batch", "queue_size", "rate_burst")
                 if getattr(self, name) < 1]
        if small:
            raise ValueError(f"ServeConfig: {', '.join(small)} must be at least 1")


class StartupError(RuntimeError):
    """The server refuses to start; the message says why."""


class RequestError(Exception):
    """A request rejected with an HTTP status and a message saying what to fix."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
