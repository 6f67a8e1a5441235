"""The KV cache's memory and speed measures (part "Generative models")."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from llmbook.generation.kv_cache import (
    kv_cache_bytes,
    measured_cache_bytes,
    time_per_token,
    tokens_per_second,
)


def _gpt2():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=3, n_embd=32, n_head=4, vocab_size=100, n_positions=128,
                        bos_token_id=None, eos_token_id=None)
    return GPT2LMHeadModel(config).eval()


def _llama():  # grouped-query attention: 4 query heads share 2 key/value heads
    torch.manual_seed(0)
    config = LlamaConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, vocab_size=100,
                         max_position_embeddings=128, bos_token_id=None, eos_token_id=None)
    return LlamaForCausalLM(config).eval()


def test_cache_bytes_by_hand():
    config = LlamaConfig(num_hidden_layers=30, hidden_size=576, num_attention_heads=9,
                         num_key_value_heads=3)  # SmolLM2-135M's shape
    # 30 layers x (key + value) x 3 heads x 64 dims x 256 tokens x 4 bytes
    assert kv_cache_bytes(config, 256) == 30 * 2 * 3 * 64 * 256 * 4 == 11_796_480
    assert kv_cache_bytes(config, 256, batch=2, dtype=torch.bfloat16) == 11_796_480


@pytest.mark.parametrize("build", [_gpt2, _llama], ids=["gpt2", "llama-gqa"])
@pytest.mark.parametrize(("batch", "length", "dtype"), [(1, 17, torch.float32),
                                                        (3, 40, torch.float32),
                                                        (2, 9, torch.bfloat16)])
def test_cache_bytes_equal_the_tensors(build, batch, length, dtype):
    model = build().to(dtype)
    ids = torch.randint(0, 100, (batch, length))
    measured = measured_cache_bytes(model, ids)
    assert measured == kv_cache_bytes(model.config, length, batch=batch, dtype=dtype)
    assert measured_cache_bytes(model, ids[:, :length // 2]) < measured


def test_time_per_token_is_measured_for_both_loops():
    model = _gpt2()
    ids = torch.randint(0, 100, (1, 8))
    for use_cache in (True, False):
        seconds = time_per_token(model, ids, 8, use_cache=use_cache, repeats=2)
        assert 0 < seconds < 1


def test_tokens_per_second_compares_with_generate():
    model = _llama()
    ids = torch.randint(0, 100, (1, 8))
    result = tokens_per_second(model, ids, new_tokens=12, repeats=2, do_sample=True,
                               temperature=0.9, top_p=0.9)
    assert result["tokens_ours"] == result["tokens_generate"] == 12
    assert result["ours"] > 0 and result["generate"] > 0
    assert result["ratio"] == pytest.approx(result["ours"] / result["generate"])
