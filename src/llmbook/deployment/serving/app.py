"""A sentiment API: FastAPI + uvicorn, with the guards a real service needs (chapter 15).

``llmbook serve --model runs/rt-onnx`` serves a model directory written by ``llmbook export``
(ONNX Runtime) or ``llmbook finetune`` (PyTorch, safetensors) -- only after its sha256
manifest (:func:`llmbook.deployment.manifest.verify_manifest`) checks out.

Endpoints:

* ``POST /v1/sentiment`` -- body ``{"text": "..."}`` or ``{"texts": ["...", ...]}``; returns
  ``{"model_version": ..., "predictions": [{"label": ..., "probabilities": {...}}, ...]}``.
* ``POST /v1/generate`` (with ``--generate smollm2|DIR``) -- body ``{"prompt": "...",
  "max_new_tokens": 64, "stream": true, ...}``: the continuation, as one JSON answer or as
  server-sent events (:mod:`llmbook.deployment.serving.generation`).
* ``GET /docs`` and ``/openapi.json`` only with ``--docs`` (``ServeConfig.docs``).
* ``GET /healthz`` (the API's event loop runs), ``GET /readyz`` (models loaded *and* warmed
  up, the micro-batch worker not hung), ``GET /metrics`` (Prometheus: requests by status,
  latency, queue time and compute time, batch sizes, queue depth in requests and texts, model;
  time to first token, tokens/s, generated tokens and running generations) -- also on a port of
  their own with ``probe_port`` (:mod:`llmbook.deployment.serving.probes`).

Guards, in the order a request meets them: at the connection, header and body deadlines, a
connection cap and 431 for oversized headers (:mod:`llmbook.deployment.serving.guard`); API key
(``Authorization: Bearer KEY``; keys from ``$LLMBOOK_API_KEYS``, comma-separated, or the file
named by ``$LLMBOOK_API_KEYS_FILE``, one a line; compared as sha256 digests in constant time;
never logged) -> 401; per-key token-bucket rate limit -> 429 with ``Retry-After``; body size ->
413; JSON and field checks -> 400/422 with a message saying what to fix; a bounded queue -> 503
with ``Retry-After`` when full (in requests or in texts), 429 when one key has too many texts
waiting. Accepted requests wait in the queue and a single worker groups them into micro-batches
(never over ``max_batch`` texts; :mod:`llmbook.deployment.serving.batching`). Request texts
are logged only through :func:`llmbook.deployment.serving.privacy.mask_pii`, masked before they
are cut to 200 characters.
"""

from __future__ import annotations

import asyncio
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
from fastapi.responses import JSONResponse

from llmbook.deployment.manifest import ManifestError
from llmbook.deployment.serving.batching import MicroBatcher
from llmbook.deployment.serving.config import (
    RequestError,
    ServeConfig,
    StartupError,
    check_text,
    log,
    parse_json,
    read_body,
)
from llmbook.deployment.serving.generation import GenerateConfig, GenerateRequest, TextGenerator
from llmbook.deployment.serving.guard import ConnectionLimits, guarded_protocol
from llmbook.deployment.serving.metrics import Metrics
from llmbook.deployment.serving.predictor import Predictor
from llmbook.deployment.serving.privacy import mask_pii
from llmbook.deployment.serving.probes import (
    ProbeServer,
    add_probe_routes,
    keep_beating,
    probe_app,
)
from llmbook.deployment.serving.security import (
    KEYS_FILE_VARIABLE,
    KEYS_VARIABLE,
    RateLimiter,
    key_id,
    load_api_keys,
    match_key,
)
from llmbook.deployment.serving.streaming import add_generate_route


# ----------------------------------------------------------------------------- request checks
def parse_texts(body: bytes, config: ServeConfig) -> list[str]:
    """The texts of a request body, or a :class:`RequestError` saying what is wrong."""
    usage = 'send {"text": "..."} or {"texts": ["...", ...]}'
    payload = parse_json(body, usage)
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
        check_text(name, text, config.max_text_chars, "to classify")
    return texts


# ----------------------------------------------------------------------------- the app
def _guard(config: ServeConfig, keys: list[str]):
    """``guard(request)``: the id of the caller's API key, or a 401/429 RequestError."""
    limiter = RateLimiter(config.rate_per_second, config.rate_burst)

    def guard(request: Request) -> str:
        who = "anonymous"
        if config.require_key:
            header = request.headers.get("authorization", "")
            scheme, _, presented = header.partition(" ")
            key = match_key(presented.strip(), keys) if scheme.lower() == "bearer" else None
            if key is None:
                raise RequestError(401, "missing or invalid API key: send 'Authorization: "
                                        "Bearer <key>'", {"WWW-Authenticate": "Bearer"})
            who = key_id(key)
        wait = limiter.acquire(who)
        if wait:
            raise RequestError(429, "rate limit exceeded for this API key: slow down",
                               {"Retry-After": str(max(1, math.ceil(wait)))})
        return who
    return guard


def _lifespan(predictor: Predictor | None, generator: TextGenerator | None, config: ServeConfig,
              metrics: Metrics, state: dict):
    """Start the micro-batcher and warm the models up before the service reports ready."""
    @asynccontextmanager
    async def lifespan(app):
        beat = asyncio.get_running_loop().create_task(keep_beating(state))
        if predictor is not None:
            app.state.batcher = state["batcher"] = MicroBatcher(predictor, config, metrics)
            app.state.batcher.start()
            predictor.predict(["warm-up text"] * min(config.max_batch, 8))  # first-call costs
        if generator is not None:
            warm_up = GenerateRequest(prompt="Hello", max_new_tokens=2)
            list(generator.tokens(generator.encode(warm_up, 64), warm_up))
        state["ready"] = True
        log.info("ready: %s", ", ".join(_versions(predictor, generator).values()))
        yield
        state["ready"] = False
        beat.cancel()
        if predictor is not None:
            await app.state.batcher.stop()
        if generator is not None:
            app.state.generation_executor.shutdown(wait=False, cancel_futures=True)
    return lifespan


def _versions(predictor: Predictor | None, generator: TextGenerator | None) -> dict:
    served = {"classifier": predictor.version if predictor else None,
              "generator": generator.version if generator else None}
    return {role: version for role, version in served.items() if version}


def _predictions(predictor: Predictor, probabilities) -> list[dict]:
    return [{"label": predictor.labels[int(p.argmax())],
             "probabilities": dict(zip(predictor.labels, map(float, p), strict=True))}
            for p in probabilities]


def _add_sentiment_route(app, predictor: Predictor, config: ServeConfig, guard, reply,
                         metrics: Metrics, state: dict) -> None:
    @app.post("/v1/sentiment")
    async def sentiment(request: Request):
        start = time.perf_counter()
        try:
            who = guard(request)
            texts = parse_texts(await read_body(request, config.max_body_bytes), config)
            if not state["ready"]:
                raise RequestError(503, "model is still loading: retry shortly",
                                   {"Retry-After": "1"})
            log.info("key %s: %d text(s): %s", who, len(texts),
                     [mask_pii(t)[:200] for t in texts[:4]])
            future = request.app.state.batcher.submit(texts, who)
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


def create_app(model_dir: str | Path | None, backend: str | None = None,
               config: ServeConfig | None = None, api_keys: list[str] | None = None,
               generate: str | Path | None = None,
               generate_config: GenerateConfig | None = None):
    """The FastAPI app: ``/v1/sentiment`` for ``model_dir``, ``/v1/generate`` for ``generate``
    (``'smollm2'`` or a causal-LM directory with a manifest), either or both.  Raises
    :class:`StartupError`/``ManifestError`` instead of starting."""
    config = config or ServeConfig()
    keys = load_api_keys() if api_keys is None else list(api_keys)
    if config.require_key and not keys:
        raise StartupError(f"no API keys: set {KEYS_VARIABLE}=key1,key2 or {KEYS_FILE_VARIABLE}"
                           "=path (or require_key=False for a local experiment)")
    if model_dir is None and generate is None:
        raise StartupError("nothing to serve: give a classifier (--model) and/or a generator "
                           "(--generate)")
    predictor = Predictor(model_dir, backend) if model_dir is not None else None
    generator = TextGenerator(generate) if generate is not None else None
    metrics = Metrics()
    metrics.queue_capacity.set(config.queue_size)
    metrics.queue_text_capacity.set(config.queue_texts)
    metrics.model.info({**_versions(predictor, generator),
                        "backend": predictor.backend if predictor else "torch"})
    state = {"ready": False, "loop_beat": None, "batcher": None}
    versions = _versions(predictor, generator)
    guard = _guard(config, keys)
    # the schema and its pages say what the service accepts: only when asked (--docs)
    docs = {} if config.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="llmbook API", **docs,
                  lifespan=_lifespan(predictor, generator, config, metrics, state))
    app.state.config, app.state.predictor, app.state.metrics = config, predictor, metrics

    def reply(endpoint: str, status: int, content, headers: dict | None = None):
        metrics.requests.labels(endpoint, str(status)).inc()
        return JSONResponse(content, status_code=status, headers=headers)

    add_probe_routes(app, reply, state, versions, metrics, config.stall_s)
    app.state.probe_app = probe_app(state, versions, metrics, config.stall_s)
    if predictor is not None:
        _add_sentiment_route(app, predictor, config, guard, reply, metrics, state)
    if generator is not None:
        add_generate_route(app, generator, generate_config or GenerateConfig(), guard, reply,
                           metrics, state)
    return app


def guarded_server_options(app, limits: ConnectionLimits) -> dict:
    """uvicorn options that put ``app`` behind the connection guard (:mod:`.guard`), its
    refusals counted in the app's ``llmbook_connections_refused_total``."""
    refused = app.state.metrics.refused_connections
    return {"http": guarded_protocol(limits, lambda reason: refused.labels(reason).inc()),
            "h11_max_incomplete_event_size": limits.max_header_bytes}


def run_server(model_dir: str | Path | None, backend: str | None = None,
               host: str = "127.0.0.1", port: int = 8000, config: ServeConfig | None = None,
               generate: str | Path | None = None,
               generate_config: GenerateConfig | None = None,
               probe_port: int | None = None) -> int:
    """Start uvicorn (blocking), and the probe server on ``probe_port`` if given; returns 2
    with a message if the server refuses to start."""
    config = config or ServeConfig()
    generate_config = generate_config or GenerateConfig()
    try:
        if probe_port is not None and probe_port == port:
            raise StartupError(f"--probe-port {probe_port} is the API's port: choose another")
        app = create_app(model_dir, backend, config, generate=generate,
                         generate_config=generate_config)
        probes = ProbeServer(app.state.probe_app, host, probe_port) if probe_port else None
    except (StartupError, ManifestError, FileNotFoundError) as err:
        print(f"error: refusing to start: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # requests in flight are bounded by the app (its queue answers 503); uvicorn's own
    # limit_concurrency would count idle connections too, so the guard replaces it (guard.py).
    # Keep idle connections longer than clients do (httpx: 5 s), or a client may reuse a
    # connection at the very moment the server closes it.
    if probes:
        probes.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    timeout_keep_alive=15, **guarded_server_options(app, ConnectionLimits()))
    finally:
        if probes:
            probes.stop()
    return 0
