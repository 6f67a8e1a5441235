"""The sentiment API (llmbook.deployment.serving.app, chapter 15): auth, limits, bad input,
metrics, batching."""

import asyncio
import json
import logging
import shutil
import socket
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_helpers import AUTH, KEY, LiveServer, burst, post, slow_down

from llmbook.cli import main
from llmbook.deployment import (
    ManifestError,
    ServerProcess,
    closed_loop,
    export_model,
    open_loop,
    replicas_needed,
    run_sync,
)
from llmbook.deployment.serving import ServeConfig, StartupError, create_app, load_api_keys

SMALL = ServeConfig(max_text_chars=100, max_request_texts=4, max_body_bytes=2_000)


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(create_app(model_dir, config=SMALL, api_keys=[KEY, "other-key"])) as c:
        yield c


def test_one_text_and_a_batch(client):
    one = post(client, {"text": "a gem"})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model_version"].startswith("served")
    [prediction] = body["predictions"]
    assert prediction["label"] in ("negative", "positive")
    assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    batch = post(client, {"texts": ["a gem", "a mess", "fine"]}).json()["predictions"]
    assert len(batch) == 3 and batch[0] == prediction


def test_health_and_readiness(client, model_dir):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    not_started = TestClient(create_app(model_dir, api_keys=[KEY]))  # lifespan not run
    assert not_started.get("/readyz").status_code == 503
    assert not_started.get("/healthz").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": KEY}, {"X-API-Key": KEY},
                                     {"Authorization": f"Bearer {KEY[:-1]}"},  # a prefix
                                     {"Authorization": f"Bearer {KEY}0"},
                                     {"Authorization": "Bearer \u00e9t\u00e9".encode("latin-1")}])
def test_requests_without_a_valid_key_are_refused(client, headers):
    response = post(client, {"text": "a gem"}, headers=headers)
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_keys_from_environment_and_file(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("k3\n\n k4 \n")
    environ = {"LLMBOOK_API_KEYS": "k1, k2,", "LLMBOOK_API_KEYS_FILE": str(keys_file)}
    assert load_api_keys(environ) == ["k1", "k2", "k3", "k4"]
    with pytest.raises(StartupError, match="does not exist"):
        load_api_keys({"LLMBOOK_API_KEYS_FILE": str(tmp_path / "absent")})


def test_no_keys_configured_refuses_to_start(model_dir, monkeypatch):
    monkeypatch.delenv("LLMBOOK_API_KEYS", raising=False)
    monkeypatch.delenv("LLMBOOK_API_KEYS_FILE", raising=False)
    with pytest.raises(StartupError, match="no API keys"):
        create_app(model_dir)


def test_rate_limit_per_key(model_dir):
    config = ServeConfig(rate_per_second=0.5, rate_burst=2)
    with TestClient(create_app(model_dir, config=config, api_keys=[KEY, "other"])) as client:
        assert [post(client, {"text": "x"}).status_code for _ in range(2)] == [200, 200]
        limited = post(client, {"text": "x"})
        assert limited.status_code == 429
        assert "rate limit" in limited.json()["detail"]
        assert int(limited.headers["Retry-After"]) >= 1
        other = post(client, {"text": "x"}, headers={"Authorization": "Bearer other"})
        assert other.status_code == 200  # limits are per key


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"text": 3}, 422, "'text' must be a string, got int"),
    ({"texts": "a gem"}, 422, "'texts' must be a list of strings, got str"),
    ({"texts": ["ok", None]}, 422, "texts[1] must be a string, got NoneType"),
    (["a gem"], 422, "exactly one of 'text' or 'texts'"),
    ({"text": "a", "texts": ["b"]}, 422, "exactly one of 'text' or 'texts'"),
    ({}, 422, "exactly one of 'text' or 'texts'"),
    ({"text": "   "}, 422, "'text' is empty"),
    ({"texts": ["fine", ""]}, 422, "texts[1] is empty"),
    ({"texts": []}, 422, "'texts' is empty"),
    ({"text": "x" * 101}, 413, "'text' has 101 characters; the limit is 100"),
    ({"text": "\u200b\u2060\t"}, 422, "'text' is empty (or only spaces, control or zero-width"),
    ({"texts": ["x"] * 5}, 413, "'texts' has 5 items; the limit is 4"),
])
def test_bad_input_gets_a_4xx_saying_what_to_fix(client, body, status, message):
    response = post(client, body)
    assert response.status_code == status
    assert message in response.json()["detail"]


@pytest.mark.parametrize("body", [b'{"text": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
                                  b'{"texts": ["a", ' + b"9" * 5_000 + b"]}"])
def test_parser_limits_are_a_400_not_a_500(model_dir, body):
    config = ServeConfig(max_body_bytes=100_000)
    with TestClient(create_app(model_dir, config=config, api_keys=[KEY])) as c:
        response = post(c, None, content=body)
    assert response.status_code == 400, response.text
    assert "body is" in response.json()["detail"]


def test_a_lone_surrogate_is_a_422(client):
    response = post(client, None, content=b'{"texts": ["fine", "bad \\ud800 text"]}')
    assert response.status_code == 422
    assert "texts[1] contains a lone surrogate" in response.json()["detail"]


def test_invalid_json(client):
    response = post(client, None, content=b'{"text": "unterminated')
    assert response.status_code == 400
    assert "body is not valid JSON" in response.json()["detail"]
    response = post(client, None, content=b"\xff\xfe")
    assert response.status_code == 400


def test_body_over_the_byte_limit(client):
    big = json.dumps({"texts": ["y" * 90] * 30}).encode()
    response = post(client, None, content=big)
    assert response.status_code == 413
    assert "body is over 2000 bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 500):
            yield big[start:start + 500]

    response = post(client, None, content=chunks())
    assert response.status_code == 413


def test_metrics_after_traffic(client):
    post(client, {"texts": ["one", "two"]})
    post(client, {"text": 1})
    text = client.get("/metrics").text
    assert 'llmbook_requests_total{endpoint="/v1/sentiment",status="200"}' in text
    assert 'llmbook_requests_total{endpoint="/v1/sentiment",status="422"}' in text
    assert "llmbook_request_latency_seconds_bucket" in text
    assert "llmbook_batch_size_count" in text and "llmbook_queue_depth" in text
    assert 'llmbook_model_info{backend="torch"' in text


def test_logs_mask_personal_data_and_never_show_the_key(client, caplog):
    with caplog.at_level(logging.INFO, logger="llmbook.deployment.serving.app"):
        post(client, {"text": "loved it, mail me at fan@example.com or call 555-123-4567"})
    logged = caplog.text
    assert "[EMAIL]" in logged and "[PHONE]" in logged
    assert "fan@example.com" not in logged and "555-123-4567" not in logged
    assert KEY not in logged


def test_a_text_is_masked_before_it_is_cut_for_the_log(model_dir, caplog):
    text = "x" * 190 + " card 4111 1111 1111 1111 thanks"  # the number straddles char 200
    with TestClient(create_app(model_dir, api_keys=[KEY])) as long_texts:
        with caplog.at_level(logging.INFO, logger="llmbook.deployment.serving.app"):
            assert post(long_texts, {"text": text}).status_code == 200
    assert " card [CAR" in caplog.text and "4111" not in caplog.text  # masked, then cut


def test_docs_are_off_unless_asked(client, model_dir):
    assert [client.get(path).status_code for path in ("/docs", "/openapi.json", "/redoc")] \
        == [404, 404, 404]
    with TestClient(create_app(model_dir, config=ServeConfig(docs=True),
                               api_keys=[KEY])) as documented:
        assert documented.get("/openapi.json").json()["info"]["title"] == "llmbook API"
        assert documented.get("/docs").status_code == 200


def test_tampered_model_refuses_to_start(model_dir, tmp_path, capsys):
    copy = shutil.copytree(model_dir, tmp_path / "tampered")
    config = json.loads((copy / "config.json").read_text())
    config["id2label"] = {"0": "positive", "1": "negative"}  # a swapped label map
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ManifestError, match="config.json does not match"):
        create_app(copy, api_keys=[KEY])
    assert main(["serve", "--model", str(copy)]) == 2
    assert "refusing to start" in capsys.readouterr().err


def test_onnx_backend(model_dir, tmp_path):
    exported = export_model(model_dir, tmp_path / "onnx")
    with TestClient(create_app(exported, api_keys=[KEY])) as client:
        torch_app = TestClient(create_app(model_dir, api_keys=[KEY]))
        onnx_body = post(client, {"texts": ["a gem", "a mess"]}).json()
        assert 'backend="onnx"' in client.get("/metrics").text
    with torch_app:
        torch_body = post(torch_app, {"texts": ["a gem", "a mess"]}).json()
    for a, b in zip(onnx_body["predictions"], torch_body["predictions"], strict=True):
        assert a["probabilities"]["positive"] == pytest.approx(b["probabilities"]["positive"],
                                                               abs=1e-4)


# ----------------------------------------------------------------------------- real server
def test_concurrent_requests_are_micro_batched(model_dir):
    app = create_app(model_dir, config=ServeConfig(max_wait_ms=20, max_batch=32),
                     api_keys=[KEY])
    slow_down(app, 0.05)
    with LiveServer(app) as url:
        responses = asyncio.run(burst(url, 16))
        metrics = httpx.get(f"{url}/metrics").text
    assert [r.status_code for r in responses] == [200] * 16
    calls = float(next(line.split()[-1] for line in metrics.splitlines()
                        if line.startswith("llmbook_batch_size_count")))
    texts = float(next(line.split()[-1] for line in metrics.splitlines()
                        if line.startswith("llmbook_batch_size_sum")))
    assert texts >= 16 and texts / calls > 2  # warm-up excluded: it is not a model call here


def test_overload_gets_fast_503_and_the_server_survives(model_dir):
    config = ServeConfig(queue_size=2, max_batch=1)
    app = create_app(model_dir, config=config, api_keys=[KEY])
    slow_down(app, 0.2)
    with LiveServer(app) as url:
        start = time.perf_counter()
        responses = asyncio.run(burst(url, 20))
        statuses = [r.status_code for r in responses]
        rejected = [r for r in responses if r.status_code == 503]
        assert set(statuses) <= {200, 503} and len(rejected) >= 10
        assert all(r.headers["Retry-After"] == "1" and "capacity" in r.json()["detail"]
                   for r in rejected)
        assert time.perf_counter() - start < 0.2 * 20  # refused at once, not served slowly
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 200
        again = asyncio.run(burst(url, 1))
        assert again[0].status_code == 200


# ----------------------------------------------------------------------------- load test tools
def test_replicas_needed_keeps_headroom_and_a_minimum():
    assert list(replicas_needed([0, 70, 71, 141, 700], 100)) == [2, 2, 2, 3, 10]
    assert list(replicas_needed([100], 100, utilisation=1.0, minimum=1)) == [1]
    with pytest.raises(ValueError, match="per_replica"):
        replicas_needed(10, 0)


def test_load_generators_count_statuses(model_dir):
    app = create_app(model_dir, config=ServeConfig(rate_per_second=5, rate_burst=5),
                     api_keys=[KEY])
    with LiveServer(app) as url:
        closed = run_sync(closed_loop(url, AUTH, ["a gem", "a mess"], 2, 1.0))
        opened = run_sync(open_loop(url, AUTH, ["a gem"], 20, 1.0))
    assert closed["concurrency"] == 2 and closed["requests_per_s"] > 0
    assert set(closed["status_counts"]) <= {"200", "429"} and closed["p50_ms"] > 0
    assert sum(opened["status_counts"].values()) + opened["client_skipped"] == 20
    assert opened["status_counts"]["429"] >= 5  # the key's burst of 5 was used up above


def test_llmbook_serve_command_in_a_child_process(model_dir):
    with ServerProcess(model_dir, "--backend", "torch", "--max-batch", "4") as server:
        answer = httpx.post(f"{server.url}/v1/sentiment", headers=server.headers,
                            json={"text": "a gem"}, timeout=30)
        assert answer.status_code == 200 and server.alive()
        assert 'backend="torch"' in httpx.get(f"{server.url}/metrics").text
        assert server.key not in server.log_text()
        # the probe port (--probe-port): probes and metrics, nothing else
        probes = httpx.Client(base_url=server.probe_url, timeout=30)
        assert probes.get("/readyz").json()["status"] == "ready"
        scraped = probes.get("/metrics").text
        assert 'llmbook_requests_total{endpoint="/v1/sentiment",status="200"} 1.0' in scraped
        assert probes.post("/v1/sentiment", headers=server.headers,
                           json={"text": "a gem"}).status_code == 404
    assert not server.alive()


def test_serve_refuses_bad_probe_ports_and_settings_in_one_line(model_dir, capsys,
                                                                monkeypatch):
    monkeypatch.setenv("LLMBOOK_API_KEYS", KEY)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["serve", "--model", str(model_dir), "--probe-port", port]) == 2
        assert f"cannot listen for probes on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["serve", "--model", str(model_dir), "--port", "8123",
                 "--probe-port", "8123"]) == 2
    assert "is the API's port" in capsys.readouterr().err
    assert main(["serve", "--model", str(model_dir), "--queue-texts", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ServeConfig: queue_texts (10)") and err.count("\n") == 1
