"""``POST /v1/generate`` (llmbook.deployment.serving, chapter 15): the answer is the book's
decoding loop's, streamed or not; every bad input gets its 4xx; overload gets 503; a client
that goes away stops its generation; the deadline holds; metrics move."""

import asyncio
import json
import time

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from serve_helpers import AUTH, KEY, LiveServer

from llmbook.cli import main
from llmbook.deployment import (
    read_metric,
    run_sync,
    stream_loop,
    wait_for_metric,
    write_manifest,
)
from llmbook.deployment.serving import (
    GenerateConfig,
    ServeConfig,
    StartupError,
    create_app,
    sse_events,
)
from llmbook.generation.decoding import generate_tokens

LIMITS = GenerateConfig(max_prompt_tokens=20, max_new_tokens=16, default_new_tokens=8,
                        max_body_bytes=1_000)


@pytest.fixture(scope="module")
def gpt_dir(tiny_gpt_dir, tmp_path_factory):
    directory = tiny_gpt_dir(tmp_path_factory.mktemp("served-gpt"), context=48)
    write_manifest(directory)
    return directory


@pytest.fixture(scope="module")
def long_gpt_dir(tiny_gpt_dir, tmp_path_factory):
    directory = tiny_gpt_dir(tmp_path_factory.mktemp("served-gpt-long"), context=512)
    write_manifest(directory)
    return directory


@pytest.fixture(scope="module")
def client(gpt_dir):
    app = create_app(None, generate=gpt_dir, generate_config=LIMITS, api_keys=[KEY])
    with TestClient(app) as c:
        yield c


def generate(client, body, headers=AUTH, **kwargs):
    return client.post("/v1/generate", headers=headers, **({"json": body} | kwargs))


def expected_text(app, prompt, new_tokens):
    generator = app.state.generator
    ids = generator.tokenizer(prompt, return_tensors="pt").input_ids
    out = generate_tokens(generator.model, ids, new_tokens, eos_token_id=generator.eos)
    return generator.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def events(text: str) -> list[tuple[str, dict]]:
    return list(sse_events(text.splitlines()))


def test_answer_is_the_books_greedy_loop(client):
    answer = generate(client, {"prompt": "the film was", "max_new_tokens": 12})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["text"] == expected_text(client.app, "the film was", 12)
    assert body["finish_reason"] in ("length", "stop") and 1 <= body["tokens"] <= 12
    assert body["model_version"] == client.app.state.generator.version


def test_stream_sends_the_same_text_piece_by_piece(client):
    body = {"prompt": "the film was", "max_new_tokens": 12}
    whole = generate(client, body).json()
    with client.stream("POST", "/v1/generate", headers=AUTH, json=body | {"stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        received = events(r.read().decode())
    pieces = [data["text"] for kind, data in received if kind == "message"]
    kind, done = received[-1]
    assert kind == "done" and "".join(pieces) == whole["text"]
    assert done["tokens"] == whole["tokens"] and done["finish_reason"] == whole["finish_reason"]


def test_seeded_sampling_repeats(client):
    body = {"prompt": "a dull", "max_new_tokens": 10, "temperature": 1.0, "top_p": 0.9,
            "seed": 3}
    first, second = (generate(client, body).json()["text"] for _ in range(2))
    assert first == second


@pytest.mark.parametrize("body, status, message", [
    ({"text": "hi"}, 422, "'prompt'"),
    ({"prompt": "   "}, 422, "'prompt' is empty"),
    ({"prompt": "\u200b\u200d\n"}, 422, "'prompt' is empty"),
    ({"prompt": 5}, 422, "'prompt' must be a string, got int"),
    ({"prompt": "hi", "max_new_tokens": 0}, 422, "from 1 to 16"),
    ({"prompt": "hi", "max_new_tokens": 17}, 422, "from 1 to 16"),
    ({"prompt": "hi", "max_new_tokens": "8"}, 422, "'max_new_tokens'"),
    ({"prompt": "hi", "max_new_tokens": True}, 422, "'max_new_tokens'"),
    ({"prompt": "hi", "temperature": -0.5}, 422, "'temperature' must be a number from 0"),
    ({"prompt": "hi", "temperature": 9}, 422, "'temperature'"),
    ({"prompt": "hi", "top_p": 0}, 422, "'top_p' must be null or a number in (0, 1]"),
    ({"prompt": "hi", "top_p": 1.5}, 422, "'top_p'"),
    ({"prompt": "hi", "top_k": -1}, 422, "'top_k'"),
    ({"prompt": "hi", "repetition_penalty": 0}, 422, "'repetition_penalty'"),
    ({"prompt": "hi", "stream": "yes"}, 422, "'stream' must be true or false"),
    ({"prompt": "hi", "temprature": 1}, 422, "unknown field(s) 'temprature'"),
    ({"prompt": "the film was great " * 8}, 413, "the limit is 20: shorten it"),
    (["hi"], 422, "'prompt'"),
])
def test_bad_input_gets_a_4xx_saying_what_to_fix(client, body, status, message):
    answer = generate(client, body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]


def test_invalid_json_oversized_body_and_context(client, gpt_dir):
    answer = generate(client, None, content=b"{not json")
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["detail"]
    answer = generate(client, None, content=json.dumps({"prompt": "x" * 2_000}).encode())
    assert answer.status_code == 413 and "body is over 1000 bytes" in answer.json()["detail"]
    roomy = GenerateConfig(max_prompt_tokens=40, max_new_tokens=40, default_new_tokens=8)
    with TestClient(create_app(None, generate=gpt_dir, generate_config=roomy,
                               api_keys=[KEY])) as wide:
        answer = generate(wide, {"prompt": "the film was great " * 3, "max_new_tokens": 40})
    assert answer.status_code == 413 and "model's context of 48" in answer.json()["detail"]


def test_key_and_rate_limit_guard_generation_too(gpt_dir):
    app = create_app(None, config=ServeConfig(rate_per_second=0.01, rate_burst=2),
                     generate=gpt_dir, generate_config=LIMITS, api_keys=[KEY])
    with TestClient(app) as c:
        assert generate(c, {"prompt": "hi"}, headers={}).status_code == 401
        statuses = [generate(c, {"prompt": "hi", "max_new_tokens": 2}).status_code
                    for _ in range(3)]
    assert statuses[:2] == [200, 200] and statuses[2] == 429


def test_classifier_and_generator_in_one_service(gpt_dir, tiny_classifier_dir, tmp_path):
    classifier = tiny_classifier_dir(tmp_path / "clf")
    write_manifest(classifier)
    app = create_app(classifier, generate=gpt_dir, generate_config=LIMITS, api_keys=[KEY])
    with TestClient(app) as c:
        assert c.post("/v1/sentiment", headers=AUTH, json={"text": "a gem"}).status_code == 200
        assert generate(c, {"prompt": "hi", "max_new_tokens": 2}).status_code == 200
        ready = c.get("/readyz").json()
    assert ready["classifier"].startswith("clf@") and ready["generator"] == gpt_dir.name


def test_refuses_to_start_without_a_model_or_a_manifest(tiny_gpt_dir, tmp_path, capsys):
    with pytest.raises(StartupError, match="nothing to serve"):
        create_app(None, api_keys=[KEY])
    bare = tiny_gpt_dir(tmp_path / "bare")
    with pytest.raises(StartupError, match="manifest"):
        create_app(None, generate=bare, api_keys=[KEY])
    assert main(["serve"]) == 2
    assert "give --model DIR" in capsys.readouterr().err


# ----------------------------------------------------------------------------- live server
def slow_tokens(app, seconds_per_token: float):
    """Make the generator a slow one (a fixed non-eos token every ``seconds_per_token``)."""
    generator = app.state.generator
    token = next(i for i in range(len(generator.tokenizer)) if i not in generator.eos_ids
                 and generator.tokenizer.decode([i]).strip())

    def tokens(ids, request):
        for _ in range(request.max_new_tokens):
            time.sleep(seconds_per_token)
            yield torch.tensor([token])
    generator.tokens = tokens


def metric(url: str, name: str, **labels) -> float:
    return read_metric(httpx.get(f"{url}/metrics").text, name, **labels)


def test_disconnect_stops_the_generation(long_gpt_dir):
    app = create_app(None, generate=long_gpt_dir, api_keys=[KEY])
    slow_tokens(app, 0.05)
    with LiveServer(app) as url:
        body = {"prompt": "the film", "max_new_tokens": 200, "stream": True}
        with httpx.stream("POST", f"{url}/v1/generate", headers=AUTH, json=body,
                          timeout=30) as r:
            lines = r.iter_lines()
            received = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in received)
        with httpx.Client(base_url=url) as client:  # until the worker has ended
            assert wait_for_metric(client, "llmbook_active_generations", 0, timeout_s=20) == 0
        assert metric(url, "llmbook_generated_tokens_total") < 60  # of 200, at 0.05 s a token
        assert metric(url, "llmbook_active_generations") == 0
        assert metric(url, "llmbook_generations_total", finish_reason="cancelled") == 1


def test_deadline_ends_a_generation(long_gpt_dir):
    limits = GenerateConfig(deadline_s=0.3)
    app = create_app(None, generate=long_gpt_dir, generate_config=limits, api_keys=[KEY])
    slow_tokens(app, 0.05)
    with TestClient(app) as c:
        start = time.perf_counter()
        body = generate(c, {"prompt": "the film", "max_new_tokens": 200}).json()
    assert body["finish_reason"] == "deadline" and body["tokens"] < 20
    assert time.perf_counter() - start < 3


async def _streams(url, n, body):
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
        return await asyncio.gather(*(client.post("/v1/generate", json=body)
                                      for _ in range(n)))


def test_overload_gets_503_at_once_and_metrics_move(long_gpt_dir):
    app = create_app(None, generate=long_gpt_dir, generate_config=GenerateConfig(max_streams=2),
                     api_keys=[KEY])
    slow_tokens(app, 0.02)
    with LiveServer(app) as url:
        answers = asyncio.run(_streams(url, 6, {"prompt": "the film", "max_new_tokens": 20}))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 503, 503, 503, 503]
        refused = [a for a in answers if a.status_code == 503]
        assert all(a.headers["Retry-After"] == "1" and "slots are busy" in a.json()["detail"]
                   for a in refused)
        served = [a for a in answers if a.status_code == 200]
        # refused at once, not queued: every 503 came back before any answer (>= 0.4 s each)
        assert max(a.elapsed for a in refused) < min(a.elapsed for a in served)
        assert metric(url, "llmbook_generated_tokens_total") >= 40
        assert metric(url, "llmbook_time_to_first_token_seconds_count") >= 2
        assert metric(url, "llmbook_generation_tokens_per_second_count") >= 2
        assert metric(url, "llmbook_generation_capacity") == 2
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_stream_loop_measures_first_token_and_tokens_per_second(long_gpt_dir):
    app = create_app(None, generate=long_gpt_dir, generate_config=GenerateConfig(max_streams=1),
                     api_keys=[KEY])
    slow_tokens(app, 0.01)
    with LiveServer(app) as url:
        row = run_sync(stream_loop(url, AUTH, ["the film", "a dull"], 2, 1.0, 10))
    assert row["concurrency"] == 2 and row["streams"] >= 2
    assert row["status_counts"].get("200", 0) >= 1 and "503" in row["status_counts"]
    assert 0 < row["ttft_p50_ms"] <= row["ttft_p99_ms"]
    assert 0 < row["tokens_per_s"] <= 100  # one slot at 0.01 s a token: 100 tokens/s at most
