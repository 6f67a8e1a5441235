"""A sentiment API: FastAPI + uvicorn, with the guards a real service needs (chapter 15).

``llmbook serve --model runs/rt-onnx`` serves a model directory written by ``llmbook export``
(ONNX Runtime) or ``llmbook finetune`` (PyTorch, safetensors) -- only after its sha256
manifest (:func:`llmbook.deployment.manifest.verify_manifest`) checks out.

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
``max_wait_ms``).  Request texts are logged only through
:func:`llmbook.deployment.serving.privacy.mask_pii`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import (
    FastAPI,
    Request,  # at module level: FastAPI resolves the handlers' annotations here
)
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmbook.deployment.manifest import ManifestError
from llmbook.deployment.serving.batching import MicroBatcher
from llmbook.deployment.serving.config import RequestError, ServeConfig, StartupError, log
from llmbook.deployment.serving.metrics import Metrics
from llmbook.deployment.serving.predictor import Predictor
from llmbook.deployment.serving.privacy import mask_pii
from llmbook.deployment.serving.security import (
    KEYS_FILE_VARIABLE,
    KEYS_VARIABLE,
    RateLimiter,
    key_id,
    load_api_keys,
    match_key,
)


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


# ----------------------------------------------------------------------------- the app
def _authoriser(config: ServeConfig, keys: list[str]):
    """``authorise(request)``: the id of the caller's API key, or a 401 RequestError."""
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
    return authorise


def _lifespan(predictor: Predictor, config: ServeConfig, metrics: Metrics, state: dict):
    """Start the micro-batcher and warm the model up before the service reports ready."""
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
    return lifespan


def _predictions(predictor: Predictor, probabilities) -> list[dict]:
    return [{"label": predictor.labels[int(p.argmax())],
             "probabilities": dict(zip(predictor.labels, map(float, p), strict=True))}
            for p in probabilities]


def _add_probes(app, reply, state: dict, predictor: Predictor, metrics: Metrics) -> None:
    """``/healthz`` (the process is up), ``/readyz`` (the model answers), ``/metrics``."""
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


def create_app(model_dir: str | Path, backend: str | None = None,
               config: ServeConfig | None = None, api_keys: list[str] | None = None):
    """The FastAPI app; raises :class:`StartupError`/``ManifestError`` instead of starting."""
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
    authorise = _authoriser(config, keys)
    app = FastAPI(title="llmbook sentiment API",
                  lifespan=_lifespan(predictor, config, metrics, state))
    app.state.config, app.state.predictor, app.state.metrics = config, predictor, metrics

    def reply(endpoint: str, status: int, content, headers: dict | None = None):
        metrics.requests.labels(endpoint, str(status)).inc()
        return JSONResponse(content, status_code=status, headers=headers)

    _add_probes(app, reply, state, predictor, metrics)

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
        return reply("/v1/sentiment", 200, {"model_version": predictor.version,
                                            "predictions": _predictions(predictor, probabilities)})

    return app


def run_server(model_dir: str | Path, backend: str | None = None, host: str = "127.0.0.1",
               port: int = 8000, config: ServeConfig | None = None) -> int:
    """Start uvicorn (blocking); returns 2 with a message if the server refuses to start."""
    config = config or ServeConfig()
    try:
        app = create_app(model_dir, backend, config)
    except (StartupError, ManifestError, FileNotFoundError) as err:
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
