"""Helpers shared by the service tests (test_serve, test_generate_api, test_service_faults):
the test key, a request helper and a real uvicorn server in a thread."""

import asyncio
import threading
import time

import httpx
import uvicorn

from llmbook.deployment import free_port
from llmbook.deployment.serving.app import guarded_server_options
from llmbook.deployment.serving.guard import ConnectionLimits

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def post(client, body, headers=AUTH, **kwargs):
    return client.post("/v1/sentiment", headers=headers, **({"json": body} | kwargs))


class LiveServer:
    """uvicorn in a background thread on a free local port; with ``limits``, behind the
    connection guard of ``llmbook serve``."""

    def __init__(self, app, limits: ConnectionLimits | None = None):
        self.port = free_port()
        guard = guarded_server_options(app, limits) if limits else {}
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", **guard))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


async def burst(url, n, texts_per_request=1, headers=AUTH):
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        requests = [client.post("/v1/sentiment", json={"texts": ["a fine film"] *
                                                       texts_per_request}) for _ in range(n)]
        return await asyncio.gather(*requests)


def slow_down(app, seconds):
    """Every model call of ``app`` takes ``seconds`` longer."""
    predictor = app.state.predictor
    predict = predictor.predict

    def slow(texts):
        time.sleep(seconds)
        return predict(texts)

    predictor.predict = slow
