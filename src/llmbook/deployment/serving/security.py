"""API keys and rate limiting of the sentiment service (chapter 15)."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path

from llmbook.deployment.serving.config import StartupError

KEYS_VARIABLE, KEYS_FILE_VARIABLE = "LLMBOOK_API_KEYS", "LLMBOOK_API_KEYS_FILE"


# ----------------------------------------------------------------------------- access control
def load_api_keys(environ: dict | None = None) -> list[str]:
    """Keys from ``$LLMBOOK_API_KEYS`` (comma-separated) and ``$LLMBOOK_API_KEYS_FILE``."""
    environ = os.environ if environ is None else environ
    keys = [k.strip() for k in environ.get(KEYS_VARIABLE, "").split(",")]
    if environ.get(KEYS_FILE_VARIABLE):
        path = Path(environ[KEYS_FILE_VARIABLE])
        if not path.exists():
            raise StartupError(f"{KEYS_FILE_VARIABLE} names {path}, which does not exist")
        keys += [line.strip() for line in path.read_text().splitlines()]
    return [k for k in keys if k]


def key_id(key: str) -> str:
    """A short, non-reversible name for a key (for rate limiting and logs)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def match_key(presented: str, keys: list[str]) -> str | None:
    """The key equal to ``presented``: sha256 digests compared in constant time against every
    key, so neither the time taken nor an early exit tells a key's length or prefix."""
    digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
    found = None
    for key in keys:
        if hmac.compare_digest(digest, hashlib.sha256(key.encode()).digest()):
            found = key
    return found


class RateLimiter:
    """Token bucket per key: ``rate`` requests per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key: str) -> float:
        """0 if the request may go ahead, else the seconds until it would be allowed."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate
