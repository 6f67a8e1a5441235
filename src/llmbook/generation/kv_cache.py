"""The KV cache made visible (part "Generative models", chapter "Generating text and the KV
cache").

Every attention layer of a decoder keeps, for every earlier token, one key and one value
vector per key/value head.  Kept between steps (``past_key_values``) they make each new
token cost one position's work instead of the whole sequence's, at the price of memory:

* :func:`kv_cache_bytes` -- that memory from the config alone,
  ``layers x 2 x kv_heads x head_dim x seq_len x batch x bytes per number``;
* :func:`measured_cache_bytes` -- the same, read off the tensors a forward pass returns;
* :func:`time_per_token` -- seconds per new token with or without the cache;
  :func:`step_seconds` times every step of one run, and :func:`cache_timing` turns the two
  runs (with and without the cache) into seconds per token for several token counts;
* :func:`cache_memory` -- the cache's size against the one full multi-head attention needs;
* :func:`tokens_per_second` -- the book's loop against ``model.generate`` on the same
  settings, interleaved in one run, with their ratio.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import pandas as pd
import torch

from llmbook.generation.decoding import cache_of, generate_tokens, stream_tokens


def _config_dims(config) -> tuple[int, int, int]:
    """``(layers, key/value heads, head dimension)`` of a decoder config."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


def kv_cache_bytes(config, seq_len: int, batch: int = 1,
                   dtype: torch.dtype = torch.float32) -> int:
    """Bytes of keys and values a model with ``config`` caches for ``seq_len`` tokens.

    With grouped-query attention (``num_key_value_heads`` < ``num_attention_heads``, as in
    Llama-style models such as SmolLM2) only the key/value heads count.
    """
    layers, kv_heads, head_dim = _config_dims(config)
    element = torch.empty((), dtype=dtype).element_size()
    return layers * 2 * kv_heads * head_dim * seq_len * batch * element


def _cache_tensors(cache) -> list[torch.Tensor]:
    if hasattr(cache, "layers"):  # transformers' Cache objects (DynamicCache, ...)
        return [t for layer in cache.layers for t in (layer.keys, layer.values)
                if t is not None]
    return [t for pair in cache for t in pair]  # the legacy tuple of (key, value) pairs


@torch.no_grad()
def measured_cache_bytes(model, input_ids: torch.Tensor) -> int:
    """Bytes of the key and value tensors in the cache one forward pass returns."""
    cache = cache_of(model(input_ids=input_ids, use_cache=True))
    return sum(t.numel() * t.element_size() for t in _cache_tensors(cache))


def time_per_token(model, input_ids: torch.Tensor, new_tokens: int, use_cache: bool = True,
                   repeats: int = 1) -> float:
    """Seconds per new token of greedy decoding, best of ``repeats`` runs.

    The time is that of the whole call (the prompt's forward pass included) divided by
    ``new_tokens``; no end-of-sequence token stops it early.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        generate_tokens(model, input_ids, new_tokens, use_cache=use_cache)
        best = min(best, time.perf_counter() - start)
    return best / new_tokens


def step_seconds(model, input_ids: torch.Tensor, new_tokens: int,
                 use_cache: bool = True) -> list[float]:
    """Seconds of each step of one greedy run of ``new_tokens`` tokens (the first step
    includes the prompt's forward pass); no end-of-sequence token stops it early."""
    times, last = [], time.perf_counter()
    for _ in stream_tokens(model, input_ids, new_tokens, use_cache=use_cache):
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times


def cache_timing(model, input_ids: torch.Tensor, counts: Sequence[int],
                 repeats: int = 1) -> pd.DataFrame:
    """Seconds per new token with and without the cache, for each of ``counts`` new tokens.

    Greedy decoding of n tokens is the first n steps of a longer run, so one run of
    ``max(counts)`` steps each way (best of ``repeats``, step by step) gives every count:
    seconds per token for n = the first n steps' time / n -- what :func:`time_per_token`
    measures for n, without timing the same steps again.
    """
    longest = max(counts)
    columns = {}
    for name, use_cache in (("with cache", True), ("without cache", False)):
        runs = [step_seconds(model, input_ids, longest, use_cache) for _ in range(repeats)]
        best = [min(steps) for steps in zip(*runs, strict=True)]
        columns[name] = [sum(best[:n]) / n for n in counts]
    table = pd.DataFrame(columns, index=pd.Index(list(counts), name="new tokens"))
    table["speed-up"] = table["without cache"] / table["with cache"]
    return table


def cache_memory(config, seq_lens: Sequence[int], batch: int = 1,
                 dtype: torch.dtype = torch.float32) -> pd.DataFrame:
    """MiB of the KV cache at each length, as configured and with every head its own keys
    and values (full multi-head attention: ``num_key_value_heads = num_attention_heads``)."""
    full = copy.deepcopy(config.get_text_config() if hasattr(config, "get_text_config")
                         else config)
    full.num_key_value_heads = full.num_attention_heads
    mib = 2 ** 20
    return pd.DataFrame({
        "cache MiB": [kv_cache_bytes(config, n, batch, dtype) / mib for n in seq_lens],
        "full multi-head MiB": [kv_cache_bytes(full, n, batch, dtype) / mib for n in seq_lens],
    }, index=pd.Index(list(seq_lens), name="tokens"))


def _timed(function) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    output = function()
    return time.perf_counter() - start, output


def tokens_per_second(model, input_ids: torch.Tensor, new_tokens: int = 64,
                      repeats: int = 3, seed: int = 0, **settings) -> dict:
    """New tokens per second of :func:`generate_tokens` and of ``model.generate``.

    Both run ``repeats`` times, alternately, on the same prompt and ``settings`` (sampling
    re-seeded with ``seed`` before each call); the best time of each counts.  Returns
    ``{"ours", "generate", "ratio"}`` (ratio = ours / generate, > 1 means ours is faster)
    and the number of tokens each produced (equal when the loops agree).
    """
    hf_settings = {"top_k": 0, **settings} if settings.get("do_sample") else dict(settings)
    attention = torch.ones_like(input_ids)
    pad = model.generation_config.pad_token_id
    pad = pad if pad is not None else model.generation_config.eos_token_id
    ours, theirs = float("inf"), float("inf")
    for _ in range(repeats):
        torch.manual_seed(seed)
        seconds, out = _timed(lambda: generate_tokens(
            model, input_ids, new_tokens, eos_token_id=None, **settings))
        ours, our_count = min(ours, seconds), out.shape[1] - input_ids.shape[1]
        torch.manual_seed(seed)
        seconds, out = _timed(lambda: model.generate(
            input_ids, attention_mask=attention, max_new_tokens=new_tokens,
            min_new_tokens=new_tokens, pad_token_id=pad, **hf_settings))
        theirs, their_count = min(theirs, seconds), out.shape[1] - input_ids.shape[1]
    result = {"ours": our_count / ours, "generate": their_count / theirs}
    return {**result, "ratio": result["ours"] / result["generate"],
            "tokens_ours": our_count, "tokens_generate": their_count}
