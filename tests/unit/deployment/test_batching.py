"""The micro-batcher (llmbook.deployment.serving.batching, chapter 15) with a stand-in model:
a hard maximum batch size, the queue bounded in texts (503), a per-key cap (429), queue time
and compute time measured apart, and a hung model call noticed (the readiness heartbeat)."""

import asyncio
import threading
import time

import numpy as np
import pytest

from llmbook.deployment.serving import Metrics, MicroBatcher, RequestError, ServeConfig


class Model:
    """Records each call's size; ``gate`` (a threading.Event) holds calls until it is set."""

    def __init__(self, seconds=0.0, gate=None):
        self.calls, self.seconds, self.gate = [], seconds, gate

    def predict(self, texts):
        self.calls.append(len(texts))
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.seconds)
        return np.tile([0.25, 0.75], (len(texts), 1))


def config(**overrides):
    return ServeConfig(**{"max_request_texts": 10, "max_batch": 4, "max_wait_ms": 20,
                          "queue_texts": 20, "key_queue_texts": 12, "stall_s": 0.3,
                          **overrides})


def sample(metrics, name):
    return metrics.registry.get_sample_value(name) or 0.0


def run(coroutine_function, model, settings):
    """``coroutine_function(batcher)`` in a fresh event loop, with the worker running."""
    metrics = Metrics()

    async def main():
        batcher = MicroBatcher(model, settings, metrics)
        batcher.start()
        try:
            return await coroutine_function(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main()), metrics


def texts(n):
    return [f"text {i}" for i in range(n)]


def test_no_model_call_is_over_max_batch():
    model = Model(seconds=0.01)

    async def send(batcher):
        futures = [batcher.submit(texts(n), key=f"k{n}") for n in (3, 3, 10, 1, 2)]
        return await asyncio.gather(*futures)

    answers, metrics = run(send, model, config())
    assert [len(a) for a in answers] == [3, 3, 10, 1, 2]  # each request gets its own rows
    assert max(model.calls) <= 4 and sum(model.calls) == 19
    assert model.calls[:4] == [3, 3, 4, 4]  # 3+3 > 4: the second request waits for the next
    assert sample(metrics, "llmbook_batch_size_count") == len(model.calls)


def test_queue_bounded_in_texts_and_per_key():
    model = Model(gate=threading.Event())

    async def fill(batcher):
        first = batcher.submit(texts(1), key="a")  # taken by the worker, which then waits
        await asyncio.sleep(0.05)
        accepted = [batcher.submit(texts(6), key=k) for k in ("a", "a", "b")]
        with pytest.raises(RequestError) as per_key:  # a has 12 waiting: its cap
            batcher.submit(texts(1), key="a")
        batcher.submit(texts(2), key="c")  # 20 texts waiting: the queue's cap
        with pytest.raises(RequestError) as full:
            batcher.submit(texts(1), key="d")
        waiting = batcher.queued_texts
        model.gate.set()
        await asyncio.gather(first, *accepted)
        return per_key.value, full.value, waiting, batcher.queued_texts

    (per_key, full, waiting, after), metrics = run(fill, model, config())
    assert per_key.status == 429 and "limit per key is 12" in per_key.message
    assert full.status == 503 and "capacity" in full.message
    assert int(per_key.headers["Retry-After"]) >= 1 and int(full.headers["Retry-After"]) >= 1
    assert (waiting, after) == (20, 0)
    assert sample(metrics, "llmbook_queued_texts") == 0


def test_queue_time_and_compute_time_are_apart():
    model = Model(seconds=0.1)

    async def send(batcher):
        return await asyncio.gather(*(batcher.submit(texts(4), key=str(i)) for i in range(3)))

    _, metrics = run(send, model, config())
    assert sample(metrics, "llmbook_compute_seconds_count") == 3  # one per model call
    assert sample(metrics, "llmbook_compute_seconds_sum") >= 0.3
    assert sample(metrics, "llmbook_queue_seconds_count") == 3  # one per request
    # the second and third requests waited for the calls before them: 0.1 + 0.2 s in the queue
    assert 0.25 <= sample(metrics, "llmbook_queue_seconds_sum") < 0.6
    assert sample(metrics, "llmbook_last_inference_timestamp_seconds") > 0


def test_a_hung_model_call_is_noticed_and_cleared():
    gate = threading.Event()
    model = Model(gate=gate)

    async def hang(batcher):
        assert batcher.stalled() is None
        answer = batcher.submit(texts(1))
        await asyncio.sleep(0.5)  # past stall_s
        hung = batcher.stalled()
        gate.set()
        await answer
        return hung, batcher.stalled(), batcher.last_success

    (hung, after, last_success), _ = run(hang, model, config())
    assert hung.startswith("a model call has been running for") and "limit 0.3 s" in hung
    assert after is None and last_success is not None


def test_a_dead_worker_is_noticed():
    async def stop(batcher):
        await batcher.stop()
        await asyncio.sleep(0.01)
        return batcher.stalled()

    stalled, _ = run(stop, Model(), config())
    assert stalled == "the model worker is not running"


@pytest.mark.parametrize("overrides", [{"queue_texts": 5}, {"key_queue_texts": 5},
                                       {"stall_s": 0}])
def test_settings_that_could_never_work_are_refused(overrides):
    with pytest.raises(ValueError, match="ServeConfig"):
        config(**overrides)
