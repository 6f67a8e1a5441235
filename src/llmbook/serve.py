"""A sentiment API: FastAPI + uvicorn, with the guards a real service needs (chapter 11).

``llmbook serve --model runs/rt-onnx`` serves a model directory written by ``llmbook export``
(ONNX Runtime) or ``llmbook finetune`` (PyTorch, safetensors) -- only after its sha256
manifest (:func:`llmbook.deploy.verify_manifest`) checks out.

Endpoints:

* ``POST /v1/sentiment`` -- body ``{"text": "..."}`` or ``{"texts": ["...", ...]}``; returns
  ``{"model_version": ..., "predictions": [{"label": ..., "probabilities": {...}}, ...]}``.
* ``GET /healthz`` (process alive), ``GET /readyz`` (model loaded *and* warmed up),
  ``GET /metrics`` (Prometheus: requests by status, latency, batch sizes, queue depth, model).

Guards, in the order a request meets them: API key (``Authorization: Bearer KEY``; keys from
``$LLMBOOK_API_KEYS``, comma-separated, or the file named by ``$LLMBOOK_API_KEYS_FILE``, one a
line; compared in constant time; never logged) -> 401; per-key token-bucket rate limit -> 429
with ``Retry-After``; body size -> 413; JSON and field checks -> 400/422 with a message saying
what to fix; a bounded queue -> 503 with ``Retry-After`` when full.  Accepted requests wait in
the queue and a single worker groups them into micro-batches (up to ``max_batch`` texts or
``max_wait_ms``).  Request texts are logged only through :func:`llmbook.privacy.mask_pii`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the handlers' annotations here

from llmbook import deploy
from llmbook.privacy import mask_pii

log = logging.getLogger("llmbook.serve")
KEYS_VARIABLE, KEYS_FILE_VARIABLE = "LLMBOOK_API_KEYS", "LLMBOOK_API_KEYS_FILE"


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


# ----------------------------------------------------------------------------- model
class Predictor:
    """Tokenizer + ONNX Runtime session or PyTorch model, loaded from a verified directory."""

    def __init__(self, model_dir: str | Path, backend: str | None = None):
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        weights = deploy.verify_manifest(model_dir)  # raises ManifestError on any mismatch
        onnx = [w for w in weights if w.suffix == ".onnx"]
        backend = backend or ("onnx" if onnx else "torch")
        config = json.loads((model_dir / "config.json").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.max_length = min(self.tokenizer.model_max_length, 512)
        self.backend = backend
        digest = hashlib.sha256("".join(deploy.sha256_file(w) for w in weights).encode())
        self.version = f"{model_dir.name}@{digest.hexdigest()[:12]}"
        if backend == "onnx":
            if not onnx:
                raise StartupError(f"{model_dir} has no .onnx file in its manifest")
            self._run = deploy.onnx_variant("served", onnx[0]).run
        elif backend == "torch":
            from transformers import AutoModelForSequenceClassification

            if not any(w.suffix == ".safetensors" for w in weights):
                raise StartupError(f"{model_dir} has no .safetensors file in its manifest")
            model = AutoModelForSequenceClassification.from_pretrained(
                model_dir, use_safetensors=True)
            self._run = deploy.torch_variant("served", model).run
        else:
            raise StartupError(f"backend must be 'onnx' or 'torch', got {backend!r}")

    def predict(self, texts: list[str]) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), labels)``."""
        logits = self._run(deploy.encode(self.tokenizer, texts, self.max_length))
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return shifted / shifted.sum(-1, keepdims=True)


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
    """The key equal to ``presented`` (constant-time comparisons against every key)."""
    found = None
    for key in keys:
        if hmac.compare_digest(presented.encode(), key.encode()):
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


# ----------------------------------------------------------------------------- request checks
def parse_texts(body: bytes, config: ServeConfig) -> list[str]:
    """The texts of a request body, or a :class:`RequestError` saying what is wrong."""
    usage = 'send {"text": "..."} or {"texts": ["...", ...]}'
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(400, f"body is not valid JSON ({err}): {usage}") from None
    if not isinstance(payload, dict) or ("text" in payload) == ("texts" in payload):
        raise RequestError(422, f"expected an object with exactly one of 'text' or 'texts': "
                                f"{usage}")
    if "text" in payload:
        texts, names = [payload["text"]], ["'text'"]
    else:
        texts = payload["texts"]
        if not isinstance(texts, list):
            raise RequestError(422, f"'texts' must be a list of strings, got "
                                    f"{type(texts).__name__}")
        if not texts:
            raise RequestError(422, "'texts' is empty: send at least one text")
        if len(texts) > config.max_request_texts:
            raise RequestError(413, f"'texts' has {len(texts)} items; the limit is "
                                    f"{config.max_request_texts}: split it into several requests")
        names = [f"texts[{i}]" for i in range(len(texts))]
    for name, text in zip(names, texts, strict=True):
        if not isinstance(text, str):
            raise RequestError(422, f"{name} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise RequestError(422, f"{name} is empty: send some text to classify")
        if len(text) > config.max_text_chars:
            raise RequestError(413, f"{name} has {len(text)} characters; the limit is "
                                    f"{config.max_text_chars}: shorten it")
    return texts


async def read_body(request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    too_big = RequestError(413, f"body is over {limit} bytes: send fewer or shorter texts")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------------------- batching
class Metrics:
    """The server's Prometheus metrics, in their own registry (one per app)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = CollectorRegistry()
        self.requests = Counter("llmbook_requests_total", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "llmbook_request_latency_seconds", "Latency of /v1/sentiment requests",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.batch_size = Histogram("llmbook_batch_size", "Texts per model call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.queue_depth = Gauge("llmbook_queue_depth", "Requests waiting for the model",
                                 registry=self.registry)
        self.queue_capacity = Gauge("llmbook_queue_capacity", "Queue size limit",
                                    registry=self.registry)
        self.model = Info("llmbook_model", "The served model", registry=self.registry)


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
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            self.metrics.queue_depth.set(self.queue.qsize())
            live = [(texts, future) for texts, future in batch if not future.done()]
            texts = [text for item, _ in live for text in item]
            if not texts:
                continue
            self.metrics.batch_size.observe(len(texts))
            try:
                probabilities = await loop.run_in_executor(self._executor,
                                                           self.predictor.predict, texts)
            except Exception as err:  # a model failure fails these requests, not the server
                log.exception("model call failed")
                for _, future in live:
                    if not future.done():
                        future.set_exception(err)
                continue
            start = 0
            for item, future in live:
                if not future.done():
                    future.set_result(probabilities[start:start + len(item)])
                start += len(item)


# ----------------------------------------------------------------------------- the app
def create_app(model_dir: str | Path, backend: str | None = None,
               config: ServeConfig | None = None, api_keys: list[str] | None = None):
    """The FastAPI app; raises :class:`StartupError`/``ManifestError`` instead of starting."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    config = config or ServeConfig()
    keys = load_api_keys() if api_keys is None else list(api_keys)
    if config.require_key and not keys:
        raise StartupError(f"no API keys: set {KEYS_VARIABLE}=key1,key2 or {KEYS_FILE_VARIABLE}"
                           "=path (or require_key=False for a local experiment)")
    predictor = Predictor(model_dir, backend)
    metrics = Metrics()
    metrics.queue_capacity.set(config.queue_size)
    metrics.model.info({"version": predictor.version, "backend": predictor.backend})
    limiter = RateLimiter(config.rate_per_second, config.rate_burst)
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app):
        app.state.batcher = MicroBatcher(predictor, config, metrics)
        app.state.batcher.start()
        predictor.predict(["warm-up text"] * min(config.max_batch, 8))  # first-call costs
        state["ready"] = True
        log.info("ready: model %s (%s backend)", predictor.version, predictor.backend)
        yield
        state["ready"] = False
        await app.state.batcher.stop()

    app = FastAPI(title="llmbook sentiment API", lifespan=lifespan)
    app.state.config, app.state.predictor, app.state.metrics = config, predictor, metrics

    def reply(endpoint: str, status: int, content, headers: dict | None = None):
        metrics.requests.labels(endpoint, str(status)).inc()
        return JSONResponse(content, status_code=status, headers=headers)

    def authorise(request: Request) -> str:
        if not config.require_key:
            return "anonymous"
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        key = match_key(presented.strip(), keys) if scheme.lower() == "bearer" else None
        if key is None:
            raise RequestError(401, "missing or invalid API key: send 'Authorization: Bearer "
                                    "<key>'", {"WWW-Authenticate": "Bearer"})
        return key_id(key)

    @app.get("/healthz")
    async def healthz():
        return reply("/healthz", 200, {"status": "ok"})

    @app.get("/readyz")
    async def readyz():
        if not state["ready"]:
            return reply("/readyz", 503, {"status": "loading"})
        return reply("/readyz", 200, {"status": "ready", "model_version": predictor.version})

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/sentiment")
    async def sentiment(request: Request):
        start = time.perf_counter()
        try:
            who = authorise(request)
            wait = limiter.acquire(who)
            if wait:
                raise RequestError(429, "rate limit exceeded for this API key: slow down",
                                   {"Retry-After": str(max(1, math.ceil(wait)))})
            texts = parse_texts(await read_body(request, config.max_body_bytes), config)
            if not state["ready"]:
                raise RequestError(503, "model is still loading: retry shortly",
                                   {"Retry-After": "1"})
            log.info("key %s: %d text(s): %s", who, len(texts),
                     [mask_pii(t[:200]) for t in texts[:4]])
            future = request.app.state.batcher.submit(texts)
            try:
                probabilities = await asyncio.wait_for(future, config.request_timeout_s)
            except TimeoutError:
                raise RequestError(504, "the model did not answer in time: retry") from None
        except RequestError as err:
            return reply("/v1/sentiment", err.status, {"detail": err.message}, err.headers)
        except Exception:  # never let one request take the server down
            log.exception("request failed")
            return reply("/v1/sentiment", 500, {"detail": "internal error"})
        metrics.latency.observe(time.perf_counter() - start)
        predictions = [{"label": predictor.labels[int(p.argmax())],
                        "probabilities": dict(zip(predictor.labels, map(float, p), strict=True))}
                       for p in probabilities]
        return reply("/v1/sentiment", 200, {"model_version": predictor.version,
                                            "predictions": predictions})

    return app


def run_server(model_dir: str | Path, backend: str | None = None, host: str = "127.0.0.1",
               port: int = 8000, config: ServeConfig | None = None) -> int:
    """Start uvicorn (blocking); returns 2 with a message if the server refuses to start."""
    import sys

    import uvicorn

    config = config or ServeConfig()
    try:
        app = create_app(model_dir, backend, config)
    except (StartupError, deploy.ManifestError, FileNotFoundError) as err:
        print(f"error: refusing to start: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # uvicorn's own bound on open requests (plain 503 before the app): protects the event loop
    # when requests arrive faster than it can even parse them; room left for probes
    limit = config.queue_size + 2 * config.max_batch + 8
    # keep idle connections longer than clients do (httpx: 5 s), or a client may reuse a
    # connection at the very moment the server closes it
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                limit_concurrency=limit, timeout_keep_alive=15)
    return 0

