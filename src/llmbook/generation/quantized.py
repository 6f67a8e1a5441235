"""Faster generation on a CPU: dynamic int8 quantization of a causal LM (part "Generative
models", chapter "Generating text and the KV cache").

Decoding one token at a time multiplies each weight matrix by a single vector: the time goes
into reading the weights, so storing them in 8 bits instead of 32 can pay.  *Dynamic*
quantization (``torch.ao.quantization.quantize_dynamic``) keeps int8 weights (one scale per
output row here) and quantizes each ``nn.Linear``'s *input* on the fly, with one scale per
tensor -- largest absolute value / 127.  That is where it breaks on language models: a few
feature dimensions carry values hundreds of times the typical one (the outlier features of
Dettmers et al., 2022), and with one scale per tensor the typical values round to a handful
of levels.  :func:`linear_input_outliers` measures this per kind of layer;
:func:`quantize_for_cpu` quantizes every ``nn.Linear`` except the kinds named in ``keep``;
:func:`compare_precisions` puts speed and held-out perplexity side by side and
:func:`int8_pays_off` applies the chapter's rule (faster, and perplexity within 2%).

GPT-2's blocks use ``transformers``' ``Conv1D`` (a ``Linear`` with its weight transposed);
:func:`quantize_for_cpu` turns them into ``nn.Linear`` first, so they are quantized too.
``quantize_dynamic`` is deprecated in torch 2.13 in favour of ``torchao`` (not installed
here) but works: its deprecation warnings are silenced.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
from transformers.pytorch_utils import Conv1D

from llmbook.generation.causal_lm import perplexity_of_texts
from llmbook.generation.kv_cache import time_per_token

#: layers :func:`quantize_for_cpu` keeps in fp32 by default: the MLP's output projection,
#: whose input has the outliers, and the output head, whose errors go straight into the logits
KEEP_FP32 = ("down_proj", "lm_head")


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """Replace every ``Conv1D`` of ``model`` (in place) by the equal ``nn.Linear``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                linear = nn.Linear(child.weight.shape[0], child.nf)
                linear.weight.data = child.weight.data.t().contiguous()
                linear.bias.data = child.bias.data.clone()
                setattr(parent, name, linear)
    return model


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def quantize_for_cpu(model: nn.Module, keep: Sequence[str] = KEEP_FP32) -> nn.Module:
    """A copy of ``model`` with int8 dynamic quantization of every ``nn.Linear`` whose name
    does not end in one of ``keep`` (weights int8 per output channel, inputs per tensor).

    ``keep=()`` quantizes them all.  The original model is not changed.
    """
    quantized = conv1d_to_linear(copy.deepcopy(model).eval())
    chosen = {name: per_channel_dynamic_qconfig for name, module in quantized.named_modules()
              if isinstance(module, nn.Linear) and _kind(name) not in keep}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_", category=UserWarning)
        return quantize_dynamic(quantized, chosen, dtype=torch.qint8)


def count_quantized(model: nn.Module) -> int:
    """How many layers of ``model`` are int8 dynamic-quantized ``Linear`` layers."""
    return sum(isinstance(m, DynamicQuantizedLinear) for m in model.modules())


@torch.no_grad()
def linear_input_outliers(model: nn.Module, input_ids: torch.Tensor) -> pd.DataFrame:
    """Per kind of ``nn.Linear`` (``q_proj``, ``down_proj``, ...): its largest absolute
    input value over ``input_ids`` and, averaged over layers, that maximum over the mean
    absolute input -- the factor by which one scale per tensor squeezes the typical value."""
    seen: dict[str, list[tuple[float, float]]] = {}

    def record(name):
        def hook(module, inputs, output):
            values = inputs[0].detach().abs()
            seen.setdefault(_kind(name), []).append((float(values.max()),
                                                     float(values.max() / values.mean())))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules()
               if isinstance(m, nn.Linear)]
    try:
        model(input_ids=input_ids)
    finally:
        for handle in handles:
            handle.remove()
    table = pd.DataFrame({kind: {"layers": len(rows), "largest |input|": max(r[0] for r in rows),
                                 "max / mean |input|": sum(r[1] for r in rows) / len(rows)}
                          for kind, rows in seen.items()}).T.rename_axis("layer")
    return table.astype({"layers": int})


def compare_precisions(models: Mapping[str, nn.Module], tokenizer, texts: Sequence[str],
                       prompt_ids: torch.Tensor, new_tokens: int, max_length: int = 256,
                       repeats: int = 3) -> pd.DataFrame:
    """Tokens per second of the book's loop (greedy, with the cache, best of ``repeats``)
    and perplexity of ``texts``, one row per model; the first row is the reference of the
    relative columns (speed-up, perplexity change)."""
    rows = {}
    for name, model in models.items():
        seconds = time_per_token(model, prompt_ids, new_tokens, use_cache=True,
                                 repeats=repeats)
        rows[name] = {"tokens/s": 1 / seconds,
                      "perplexity": perplexity_of_texts(model, tokenizer, texts, max_length)}
    table = pd.DataFrame(rows).T.rename_axis("model")
    reference = table.iloc[0]
    table["speed-up"] = table["tokens/s"] / reference["tokens/s"]
    table["perplexity change"] = table["perplexity"] / reference["perplexity"] - 1
    return table


def int8_pays_off(table: pd.DataFrame, candidate: str, tolerance: float = 0.02) -> bool:
    """The chapter's rule for making int8 the default: ``candidate``'s row (of
    :func:`compare_precisions`) is faster than the reference and its perplexity at most
    ``tolerance`` (relative) higher."""
    row = table.loc[candidate]
    return bool(row["speed-up"] > 1 and row["perplexity change"] <= tolerance)
