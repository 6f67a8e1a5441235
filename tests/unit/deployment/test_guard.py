"""Connection-level guards of the API (chapter 15): half-open sockets neither block requests
nor stay open, a stalled body is cut off, and the connection cap holds; every refusal is
reported with its reason."""

import http.client
import socket
import threading
import time

import pytest
import uvicorn

from llmbook.deployment.serving.guard import ConnectionLimits, guarded_protocol


async def app(scope, receive, send):
    """Answers every request with its body's length once the whole body has arrived."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _serve(limits, refused):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="error", lifespan="off",
                                           http=guarded_protocol(limits, refused.append),
                                           h11_max_incomplete_event_size=limits.max_header_bytes))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    return server, thread, port


@pytest.fixture
def serve():
    running = []

    def start(**limits):
        running.append(_serve(ConnectionLimits(**limits), start.refused))
        return running[-1][2]

    start.refused = []  # the reasons the guard reported, in order
    yield start
    for server, thread, _ in running:
        server.should_exit = True
        thread.join(10)


def _half_open(port, count):
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # the headers never end
        sockets.append(s)
    return sockets


def _closed(s, wait=0.2) -> bool:
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def _get(port, body=b"abc"):
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    started = time.perf_counter()
    client.request("POST", "/", body=body)
    response = client.getresponse()
    return response.status, response.read(), time.perf_counter() - started, client


def test_half_open_sockets_neither_block_requests_nor_stay(serve):
    port = serve(header_timeout=1.0)
    held = _half_open(port, 300)
    status, body, seconds, client = _get(port)
    assert (status, body) == (200, b"3") and seconds < 1.0
    client.request("POST", "/", body=b"abcd")  # the same keep-alive connection, again
    assert client.getresponse().read() == b"4"
    time.sleep(1.5)
    assert all(_closed(s) for s in held)  # past the header deadline: all closed
    assert not _closed(client.sock)  # an answered keep-alive connection is not cut off
    assert serve.refused == ["header_timeout"] * 300


def test_a_stalled_body_is_cut_off(serve):
    port = serve(body_timeout=0.5)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    assert not _closed(s, wait=0.1)
    time.sleep(0.8)
    assert _closed(s) and serve.refused == ["body_timeout"]


def test_connections_beyond_the_cap_are_refused(serve):
    port = serve(max_connections=5)
    held = _half_open(port, 5)
    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert _closed(extra, wait=1.0)
    assert not any(_closed(s, wait=0.05) for s in held)
    assert serve.refused == ["capacity"]


def test_oversized_headers_get_431_and_normal_ones_pass(serve):
    port = serve(max_header_bytes=4096)
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    client.request("POST", "/", body=b"ab", headers={"X-Filler": "y" * 20_000})
    response = client.getresponse()
    assert response.status == 431 and b"4096" in response.read()
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    client.request("POST", "/", body=b"ab", headers={"X-Filler": "y" * 2_000})
    assert client.getresponse().status == 200
    trickled = socket.create_connection(("127.0.0.1", port), timeout=5)  # headers in pieces
    trickled.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(10):
        trickled.sendall(b"X-Filler: " + b"y" * 1000 + b"\r\n")
    assert trickled.recv(100).startswith(b"HTTP/1.1 431")
    assert serve.refused == ["header_size"] * 2


def test_a_malformed_request_still_gets_400(serve):
    port = serve()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 400")
