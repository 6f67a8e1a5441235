"""The KV cache's timing per step and memory tables (part "Generative models", chapter
"Generating text and the KV cache")."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig

from llmbook.generation import kv_cache
from llmbook.generation.kv_cache import cache_memory, cache_timing, step_seconds


def _gpt2():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=64,
                        bos_token_id=None, eos_token_id=None)
    return GPT2LMHeadModel(config).eval()


def test_one_time_per_step():
    ids = torch.randint(0, 100, (1, 5))
    for use_cache in (True, False):
        times = step_seconds(_gpt2(), ids, 7, use_cache=use_cache)
        assert len(times) == 7 and all(0 < t < 1 for t in times)


def test_seconds_per_token_for_each_count_by_hand(monkeypatch):
    runs = {True: [[1.0, 1.0, 1.0, 1.0], [2.0, 0.5, 1.0, 1.0]],
            False: [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0]]}
    calls = []

    def fake(model, input_ids, new_tokens, use_cache):
        calls.append(new_tokens)
        return runs[use_cache][(len(calls) - 1) % 2]  # the two repeats in turn

    monkeypatch.setattr(kv_cache, "step_seconds", fake)
    table = cache_timing(None, None, counts=(2, 4), repeats=2)
    assert calls == [4, 4, 4, 4]  # one run per repeat and setting, of the largest count
    # best per step: with [1, 0.5, 1, 1]; without [1, 2, 3, 4]
    assert table["with cache"].tolist() == pytest.approx([0.75, 0.875])
    assert table["without cache"].tolist() == pytest.approx([1.5, 2.5])
    assert table["speed-up"].tolist() == pytest.approx([2.0, 2.5 / 0.875])
    assert list(table.index) == [2, 4]


def test_cache_memory_against_full_multi_head_attention():
    config = LlamaConfig(num_hidden_layers=30, hidden_size=576, num_attention_heads=9,
                         num_key_value_heads=3)  # SmolLM2-135M's shape
    table = cache_memory(config, [256, 8192])
    assert table.loc[256, "cache MiB"] == pytest.approx(11_796_480 / 2 ** 20)
    assert (table["full multi-head MiB"] / table["cache MiB"]).tolist() == pytest.approx([3, 3])
    assert config.num_key_value_heads == 3  # the model's own config is not changed
    gpt2 = GPT2Config(n_layer=2, n_embd=32, n_head=4)
    assert cache_memory(gpt2, [10])["full multi-head MiB"].tolist() == pytest.approx(
        cache_memory(gpt2, [10])["cache MiB"].tolist())
