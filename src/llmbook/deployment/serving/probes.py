"""Health, readiness and metrics of the service (chapter 15), also on a port of their own.

``GET /healthz`` (liveness), ``GET /readyz`` (readiness) and ``GET /metrics`` (Prometheus) are
served on the API's port and, with ``llmbook serve --probe-port N`` (default 9000; 0 turns it
off), by a second server in a thread of its own, with its own event loop and connection guard
(as Triton and TEI keep metrics apart): a flood of connections or requests on the API port
does not reach it, so probes and scrapes still answer during overload.  Because that thread
would answer even if the API were stuck, the answers check the API itself:

* liveness fails (503) when the API's event loop has not run for ``ServeConfig.stall_s``
  seconds (its heartbeat task ticks twice a second), so a wedged process is restarted;
* readiness fails (503) while loading, when liveness fails, and when the micro-batch worker is
  hung (a model call running for more than ``stall_s``) or dead
  (:meth:`llmbook.deployment.serving.batching.MicroBatcher.stalled`), so traffic goes elsewhere.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmbook.deployment.serving.config import StartupError
from llmbook.deployment.serving.guard import ConnectionLimits, guarded_protocol
from llmbook.deployment.serving.metrics import Metrics

#: The probe port of ``llmbook serve`` and of deploy/ (TEI's metrics port).
PROBE_PORT = 9000
#: Seconds between heartbeats of the API's event loop.
BEAT_S = 0.5


async def keep_beating(state: dict) -> None:
    """Record in ``state["loop_beat"]`` that the API's event loop runs (a task of that loop)."""
    while True:
        state["loop_beat"] = time.monotonic()
        await asyncio.sleep(BEAT_S)


def liveness(state: dict, stall_s: float) -> tuple[int, dict]:
    beat = state.get("loop_beat")
    quiet = 0.0 if beat is None else time.monotonic() - beat
    if quiet > stall_s:
        return 503, {"status": "stalled",
                     "detail": f"the API's event loop has not run for {quiet:.0f} s"}
    return 200, {"status": "ok"}


def readiness(state: dict, versions: dict, stall_s: float) -> tuple[int, dict]:
    if not state["ready"]:
        return 503, {"status": "loading"}
    status, body = liveness(state, stall_s)
    batcher = state.get("batcher")
    problem = body.get("detail") if status != 200 else batcher and batcher.stalled()
    if problem:
        return 503, {"status": "stalled", "detail": problem}
    last = getattr(batcher, "last_success", None)
    return 200, {"status": "ready", "model_version": versions.get("classifier"), **versions,
                 "last_inference_age_s": None if last is None
                 else round(time.monotonic() - last, 3)}


def add_probe_routes(app, reply, state: dict, versions: dict, metrics: Metrics,
                     stall_s: float) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``app``; ``reply(endpoint, status, body)``
    answers and counts."""
    @app.get("/healthz")
    async def healthz():
        return reply("/healthz", *liveness(state, stall_s))

    @app.get("/readyz")
    async def readyz():
        return reply("/readyz", *readiness(state, versions, stall_s))

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def probe_app(state: dict, versions: dict, metrics: Metrics, stall_s: float) -> FastAPI:
    """The probe port's app: the three probe routes and nothing else (no key needed, no docs)."""
    app = FastAPI(title="llmbook probes", docs_url=None, redoc_url=None, openapi_url=None)

    def reply(endpoint: str, status: int, content):
        metrics.requests.labels(endpoint, str(status)).inc()
        return JSONResponse(content, status_code=status)

    add_probe_routes(app, reply, state, versions, metrics, stall_s)
    return app


class ProbeServer:
    """uvicorn serving a probe app in a thread of its own.  The port is bound at once, so a
    port in use is a :class:`StartupError`, not a thread that died quietly."""

    def __init__(self, app, host: str, port: int, limits: ConnectionLimits | None = None):
        limits = limits or ConnectionLimits(max_connections=256)  # probes and scrapes: few
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.socket = socket.create_server((host, port), family=family)
        except OSError as err:
            raise StartupError(f"cannot listen for probes on {host}:{port} ({err.strerror}): "
                               "choose another --probe-port (0: none)") from None
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                http=guarded_protocol(limits), timeout_keep_alive=15,
                                h11_max_incomplete_event_size=limits.max_header_bytes)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="probes", daemon=True)

    def start(self) -> ProbeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.socket.close()
