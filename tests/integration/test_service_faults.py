"""Fault injection against the sentiment service (chapter 15; issue 21), on a real uvicorn server
behind the connection guard of ``llmbook serve`` and with its probe server:

* every class of bad (or odd but valid) input gets its expected status, and none a 5xx;
* a poison text fails only its own request;
* 500 half-open sockets on the API port: probes and a valid request still answer within 1 s,
  and the sockets are closed at the header deadline; a full API port leaves the probe port up;
* a hung model worker turns readiness to 503 within seconds, and back once it answers;
* a stalled event loop turns liveness on the probe port to 503.
"""

import asyncio
import json
import re
import socket
import threading
import time

import httpx
import pytest
from serve_helpers import AUTH, KEY, LiveServer, post

from llmbook.deployment.serving import ProbeServer, ServeConfig, create_app
from llmbook.deployment.serving.guard import ConnectionLimits

CONFIG = ServeConfig(max_text_chars=100, max_request_texts=4, max_body_bytes=30_000)
#: a model call or an event-loop pause longer than this is a stall (the default is 10 s)
STALL = ServeConfig(stall_s=1.0)
LIMITS = ConnectionLimits(header_timeout=1.0, body_timeout=1.0)


class Service:
    """The app on a LiveServer (API port, guarded) and a ProbeServer (probe port)."""

    def __init__(self, model_dir, limits=LIMITS, config=CONFIG, routes=None):
        self.app = create_app(model_dir, config=config, api_keys=[KEY])
        if routes:
            routes(self.app)
        self.live = LiveServer(self.app, limits)
        self.probes = ProbeServer(self.app.state.probe_app, "127.0.0.1", 0)

    def __enter__(self):
        self.url = self.live.__enter__()
        self.probes.start()
        self.probe_url = f"http://127.0.0.1:{self.probes.port}"
        wait_for(lambda: httpx.get(f"{self.probe_url}/readyz").status_code == 200)
        return self

    def __exit__(self, *exc):
        self.probes.stop()
        self.live.__exit__(*exc)


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def service(model_dir):
    with Service(model_dir) as running:
        yield running


def raw(port, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; the first bytes of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return s.recv(200)


def nested(depth):
    return b'{"text": ' + b"[" * depth + b"]" * depth + b"}"


#: (class of input, how to send it, expected status): bodies go to POST /v1/sentiment
JSON_CLASSES = [
    ("syntax error", b'{"text": "unterminated', 400),
    ("not UTF-8", b"\xff\xfe\x00", 400),
    ("empty body", b"", 400),
    ("form-encoded body", b"text=a+gem", 400),
    ("nested 10,000 deep", nested(10_000), 400),
    ("nested 10,000 deep inside texts", b'{"texts": [' + b"[" * 10_000 + b"]" * 10_000
     + b"]}", 400),
    ("integer of 5,000 digits", b'{"texts": ["a", ' + b"9" * 5_000 + b"]}", 400),
    ("float overflow (inf)", b'{"text": 1e400}', 422),
    ("NaN", b'{"text": NaN}', 422),
    ("lone surrogate", b'{"text": "bad \\ud800 text"}', 422),
    ("lone surrogate in texts", b'{"texts": ["ok", "\\udfff"]}', 422),
    ("zero-width only", json.dumps({"text": "\u200b\u2060\ufeff"}).encode(), 422),
    ("control characters only", b'{"text": "\\u0000\\u0001\\t"}', 422),
    ("empty text", b'{"text": ""}', 422),
    ("text is a number", b'{"text": 3}', 422),
    ("text is an object", b'{"text": {"a": 1}}', 422),
    ("texts is a string", b'{"texts": "a gem"}', 422),
    ("texts is empty", b'{"texts": []}', 422),
    ("null in texts", b'{"texts": ["ok", null]}', 422),
    ("both text and texts", b'{"text": "a", "texts": ["b"]}', 422),
    ("neither", b'{"label": 1}', 422),
    ("top-level array", b'["a gem"]', 422),
    ("top-level string", b'"a gem"', 422),
    ("duplicate key, last not a string", b'{"text": "a", "text": 5}', 422),
    ("text over max_text_chars", json.dumps({"text": "x" * 101}).encode(), 413),
    ("too many texts", json.dumps({"texts": ["x"] * 5}).encode(), 413),
    ("body over max_body_bytes", json.dumps({"texts": ["y" * 90] * 400}).encode(), 413),
    # odd but valid: answered
    ("UTF-8 BOM before the JSON", b'\xef\xbb\xbf{"text": "a gem"}', 200),
    ("emoji and right-to-left text", json.dumps({"text": "\U0001f600 \u05d8\u05d5\u05d1"})
     .encode(), 200),
    ("NUL inside a text", b'{"text": "a\\u0000gem"}', 200),
    ("text of exactly max_text_chars", json.dumps({"text": "x" * 100}).encode(), 200),
]

HTTP_CLASSES = [  # (class, request, expected status)
    ("no API key", lambda c: c.post("/v1/sentiment", json={"text": "a"}), 401),
    ("wrong API key", lambda c: post(c, {"text": "a"}, {"Authorization": "Bearer nope"}), 401),
    ("empty bearer key", lambda c: post(c, {"text": "a"}, {"Authorization": "Bearer"}), 401),
    ("Basic scheme", lambda c: post(c, {"text": "a"}, {"Authorization": f"Basic {KEY}"}), 401),
    ("non-ASCII key", lambda c: post(c, {"text": "a"},
                                      {"Authorization": "Bearer \u00e9t\u00e9".encode()}), 401),
    ("GET on the POST route", lambda c: c.get("/v1/sentiment", headers=AUTH), 405),
    ("unknown path", lambda c: c.get("/v1/nothing", headers=AUTH), 404),
    ("docs are off", lambda c: c.get("/openapi.json"), 404),
    ("generate not served", lambda c: c.post("/v1/generate", headers=AUTH,
                                             json={"prompt": "hi"}), 404),
    ("body without Content-Length (chunked), too big",
     lambda c: post(c, None, content=iter([b'{"texts": ["' + b"y" * 1_000] * 40)), 413),
]

WIRE_CLASSES = [  # (class, raw bytes on a fresh connection, expected status)
    ("headers over 8 KB", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"y" * 20_000
     + b"\r\n\r\n", 431),
    ("not HTTP", b"NOT HTTP AT ALL\r\n\r\n", 400),
    ("Content-Length not a number", b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: ten\r\n\r\n", 400),
    ("two Content-Lengths that disagree", b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
]


def test_every_bad_input_class_gets_its_status_and_none_a_5xx(service):
    outcomes = []
    with httpx.Client(base_url=service.url, timeout=30) as client:
        for name, body, expected in JSON_CLASSES:
            outcomes.append((name, expected, post(client, None, content=body).status_code))
        for name, send, expected in HTTP_CLASSES:
            outcomes.append((name, expected, send(client).status_code))
        for name, data, expected in WIRE_CLASSES:
            answer = raw(service.live.port, data)
            outcomes.append((name, expected, int(answer.split()[1])))
        metrics = client.get("/metrics").text
    wrong = [o for o in outcomes if o[1] != o[2]]
    server_errors = [o for o in outcomes if o[2] >= 500]
    print(f"\n{len(outcomes)} input classes, {len(server_errors)} answered 5xx")
    assert not wrong, wrong
    assert len(outcomes) >= 45 and not server_errors
    assert 'status="5' not in metrics  # nothing counted as a server error either


def test_a_stalled_body_is_a_4xx_not_a_500(service):
    with socket.create_connection(("127.0.0.1", service.live.port), timeout=5) as s:
        s.sendall(b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"text\": ")
        time.sleep(LIMITS.body_timeout + 0.5)  # the guard cuts it off
        s.settimeout(1)
        assert s.recv(100) == b""
    metrics = httpx.get(f"{service.probe_url}/metrics").text
    assert 'status="5' not in metrics
    refused = re.search(r'llmbook_connections_refused_total\{reason="body_timeout"\} (\S+)',
                        metrics)
    assert refused and float(refused.group(1)) >= 1  # counted, though the app never saw it


def test_a_poison_text_fails_only_its_own_request(model_dir):
    def poison(app):
        predict = app.state.predictor.predict

        def fragile(texts):
            time.sleep(0.05)  # lets the requests meet in one batch
            if any("POISON" in text for text in texts):
                raise RuntimeError("the model cannot read this text")
            return predict(texts)
        app.state.predictor.predict = fragile

    config = ServeConfig(max_wait_ms=50, stall_s=5)
    with Service(model_dir, config=config, routes=poison) as running:
        async def mixed():
            async with httpx.AsyncClient(base_url=running.url, headers=AUTH, timeout=30) as c:
                texts = ["a fine film"] * 6 + ["POISON"] + ["a dull film"] * 6
                return await asyncio.gather(*(c.post("/v1/sentiment", json={"text": text})
                                              for text in texts))
        statuses = [r.status_code for r in asyncio.run(mixed())]
        ready = httpx.get(f"{running.probe_url}/readyz").status_code
        metrics = httpx.get(f"{running.probe_url}/metrics").text
    assert statuses == [200] * 6 + [500] + [200] * 6 and ready == 200
    assert "llmbook_batch_size_count" in metrics


def half_open(port, count):
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\n")  # the headers never end
        sockets.append(s)
    return sockets


def timed(send):
    started = time.perf_counter()
    response = send()
    return response.status_code, time.perf_counter() - started


def test_idle_socket_flood_neither_blocks_requests_nor_stays(service):
    held = half_open(service.live.port, 500)
    try:
        answers = {"API /healthz": timed(lambda: httpx.get(f"{service.url}/healthz")),
                   "probe /readyz": timed(lambda: httpx.get(f"{service.probe_url}/readyz")),
                   "predict": timed(lambda: httpx.post(f"{service.url}/v1/sentiment",
                                                       headers=AUTH, json={"text": "a gem"}))}
        print("\n500 half-open sockets:", {k: f"{s} in {t:.2f} s" for k, (s, t) in
                                           answers.items()})
        assert all(status == 200 and seconds < 1.0 for status, seconds in answers.values())
        time.sleep(LIMITS.header_timeout + 0.5)
        closed = 0
        for s in held:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == len(held)  # all cut off at the header deadline
    finally:
        for s in held:
            s.close()


def test_a_full_api_port_leaves_the_probe_port_answering(model_dir):
    limits = ConnectionLimits(max_connections=40, header_timeout=10)
    with Service(model_dir, limits=limits) as running:
        held = half_open(running.live.port, 40)
        try:
            with pytest.raises(httpx.TransportError):  # the API port refuses more connections
                httpx.get(f"{running.url}/healthz", timeout=2)
            for path in ("/healthz", "/readyz", "/metrics"):
                assert httpx.get(f"{running.probe_url}{path}", timeout=2).status_code == 200
        finally:
            for s in held:
                s.close()


def test_a_hung_worker_makes_the_service_not_ready_then_ready_again(model_dir):
    hung, release = threading.Event(), threading.Event()

    def hang(app):
        predict = app.state.predictor.predict

        def gated(texts):
            if hung.is_set():
                release.wait(30)
            return predict(texts)
        app.state.predictor.predict = gated

    with Service(model_dir, config=STALL, routes=hang) as running:
        hung.set()
        try:
            started = time.monotonic()
            stuck = threading.Thread(target=httpx.post, args=(f"{running.url}/v1/sentiment",),
                                     kwargs={"headers": AUTH, "json": {"text": "a gem"},
                                             "timeout": 30}, daemon=True)
            stuck.start()
            wait_for(lambda: httpx.get(f"{running.probe_url}/readyz").status_code == 503, 5)
            print(f"\nhung worker: /readyz 503 after {time.monotonic() - started:.1f} s")
            answer = httpx.get(f"{running.probe_url}/readyz").json()
            assert answer["status"] == "stalled" and "model call" in answer["detail"]
            assert httpx.get(f"{running.url}/readyz").status_code == 503  # the API port too
            assert httpx.get(f"{running.probe_url}/healthz").status_code == 200  # alive
        finally:
            release.set()
        stuck.join(10)
        wait_for(lambda: httpx.get(f"{running.probe_url}/readyz").status_code == 200, 5)


def test_a_stalled_event_loop_fails_liveness_on_the_probe_port(model_dir):
    def blocking_route(app):
        @app.get("/block")
        async def block():  # a bug that blocks the event loop
            time.sleep(2.5)
            return {}

    with Service(model_dir, config=STALL, routes=blocking_route) as running:
        blocker = threading.Thread(target=httpx.get, args=(f"{running.url}/block",),
                                   kwargs={"timeout": 10}, daemon=True)
        blocker.start()
        wait_for(lambda: httpx.get(f"{running.probe_url}/healthz").status_code == 503, 3)
        answer = httpx.get(f"{running.probe_url}/healthz").json()
        assert answer["status"] == "stalled" and "event loop" in answer["detail"]
        blocker.join(10)
        wait_for(lambda: httpx.get(f"{running.probe_url}/healthz").status_code == 200, 3)
