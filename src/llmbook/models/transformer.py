"""The Transformer, one layer at a time (chapter 2): a BERT encoder written out by hand.

Every function here is one box of the encoder diagram, in the order the data flows through
it: token + position embeddings, then, in each layer, multi-head self-attention, a residual
connection with LayerNorm, a position-wise feed-forward block and a second residual +
LayerNorm.  The weights come from a trained ``BertModel`` (MiniLM by default), so the chapter
can check with ``torch.allclose`` that these few lines compute exactly what the library does.

Shapes: ``batch`` sequences of ``n`` tokens, ``d`` hidden dimensions, ``h`` heads of
``d / h`` dimensions each.  A *mask* is boolean, ``True`` where a query may attend to a key,
and broadcasts to ``(batch, h, n, n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "LayerWeights",
    "Linear",
    "Norm",
    "add_and_norm",
    "attention_to_offset",
    "bidirectional_mask",
    "causal_mask",
    "embed",
    "encoder_layer",
    "encoder_stack",
    "feed_forward",
    "gelu",
    "layer_norm",
    "linear",
    "merge_heads",
    "multi_head_self_attention",
    "padding_mask",
    "scaled_dot_product_attention",
    "sinusoidal_positions",
    "split_heads",
    "weights_from_bert_layer",
]

#: A linear map's ``(weight, bias)``; the weight is ``(out, in)``, as in ``torch.nn.Linear``.
Linear = tuple[Tensor, Tensor]
#: A LayerNorm's ``(gamma, beta)``: the per-dimension scale and shift after normalising.
Norm = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class LayerWeights:
    """The tensors of one encoder layer: four attention projections, two feed-forward maps,
    and the scale and shift (``gamma``, ``beta``) of the two LayerNorms."""

    query: Linear
    key: Linear
    value: Linear
    attention_output: Linear
    attention_norm: Norm
    ff_in: Linear
    ff_out: Linear
    output_norm: Norm
    norm_eps: float = 1e-12


def linear(x: Tensor, params: Linear) -> Tensor:
    """``x W^T + b``: every token's vector is mapped independently."""
    weight, bias = params
    return x @ weight.T + bias


# ------------------------------------------------------------------- masks


def bidirectional_mask(n: int) -> Tensor:
    """Every token may attend to every token (BERT, encoders): an ``n x n`` block of ``True``."""
    return torch.ones(n, n, dtype=torch.bool)


def causal_mask(n: int) -> Tensor:
    """Token ``i`` may attend only to tokens ``0..i`` (GPT, decoders): lower-triangular."""
    return torch.tril(bidirectional_mask(n))


def padding_mask(attention_mask: Tensor) -> Tensor:
    """The tokenizer's ``(batch, n)`` 0/1 mask as ``(batch, 1, 1, n)``: no query sees ``[PAD]``."""
    return attention_mask.bool()[:, None, None, :]


# --------------------------------------------------------------- attention


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor,
                                 mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T / sqrt(d_k)) v``, returning the output and the attention weights.

    Row ``i`` of the weights says how query ``i`` shares its attention among the keys; each
    row sums to 1.  Masked-out keys get the most negative score the dtype holds, so after the
    softmax their weight is exactly 0 (and a fully masked row stays finite).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(batch, n, d)`` -> ``(batch, h, n, d / h)``: each head gets its own slice of ``d``."""
    batch, n, d = x.shape
    return x.view(batch, n, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(batch, h, n, d / h)`` -> ``(batch, n, d)``: the heads' outputs side by side."""
    batch, heads, n, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, n, heads * head_dim)


def multi_head_self_attention(x: Tensor, weights: LayerWeights, num_heads: int,
                              mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Project ``x`` to queries, keys and values, attend in ``num_heads`` heads in parallel,
    concatenate the heads and mix them with the output projection.

    Returns the ``(batch, n, d)`` output and the ``(batch, h, n, n)`` attention weights.
    """
    q = split_heads(linear(x, weights.query), num_heads)
    k = split_heads(linear(x, weights.key), num_heads)
    v = split_heads(linear(x, weights.value), num_heads)
    heads, attention = scaled_dot_product_attention(q, k, v, mask)
    return linear(merge_heads(heads), weights.attention_output), attention


# ----------------------------------------------------- residual, norm, feed-forward


def layer_norm(x: Tensor, params: Norm, eps: float = 1e-12) -> Tensor:
    """Normalise each token's vector to mean 0 and variance 1, then scale and shift it."""
    gamma, beta = params
    mean = x.mean(dim=-1, keepdim=True)
    variance = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(variance + eps) * gamma + beta


def add_and_norm(x: Tensor, sublayer_output: Tensor, params: Norm,
                 eps: float = 1e-12) -> Tensor:
    """The residual connection, then LayerNorm (BERT's *post-norm*): ``LN(x + f(x))``."""
    return layer_norm(x + sublayer_output, params, eps)


def gelu(x: Tensor) -> Tensor:
    """The Gaussian error linear unit, ``x * Phi(x)``, in the exact (erf) form BERT uses."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def feed_forward(x: Tensor, weights: LayerWeights) -> Tensor:
    """Widen each token (``d`` -> usually ``4d``), apply GELU, project back to ``d``."""
    return linear(gelu(linear(x, weights.ff_in)), weights.ff_out)


# ------------------------------------------------------------------- a layer


def encoder_layer(x: Tensor, weights: LayerWeights, num_heads: int,
                  mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One encoder layer: attention, add & norm, feed-forward, add & norm.

    Returns the new ``(batch, n, d)`` hidden states and the layer's attention weights.
    """
    attended, attention = multi_head_self_attention(x, weights, num_heads, mask)
    x = add_and_norm(x, attended, weights.attention_norm, weights.norm_eps)
    x = add_and_norm(x, feed_forward(x, weights), weights.output_norm, weights.norm_eps)
    return x, attention


def _linear_of(module: torch.nn.Module) -> Linear:
    """``(weight, bias)`` of a ``Linear`` or ``LayerNorm`` module, detached from autograd."""
    return module.weight.detach(), module.bias.detach()


def weights_from_bert_layer(layer: torch.nn.Module) -> LayerWeights:
    """Read the tensors of a ``transformers`` ``BertLayer`` into a :class:`LayerWeights`.

    ``layer.attention.self`` holds the query/key/value projections, ``layer.attention.output``
    the output projection and first LayerNorm, ``layer.intermediate`` and ``layer.output``
    the feed-forward block and the second LayerNorm.
    """
    attention, output = layer.attention, layer.output
    return LayerWeights(
        query=_linear_of(attention.self.query),
        key=_linear_of(attention.self.key),
        value=_linear_of(attention.self.value),
        attention_output=_linear_of(attention.output.dense),
        attention_norm=_linear_of(attention.output.LayerNorm),
        ff_in=_linear_of(layer.intermediate.dense),
        ff_out=_linear_of(output.dense),
        output_norm=_linear_of(output.LayerNorm),
        norm_eps=output.LayerNorm.eps,
    )


# ------------------------------------------------------- positions and the stack


def embed(model: torch.nn.Module, input_ids: Tensor) -> Tensor:
    """BERT's input vectors: word embedding + learned position embedding + segment-0
    embedding, then LayerNorm.  ``model`` is a ``BertModel``; ``input_ids`` is ``(batch, n)``.
    """
    tables = model.embeddings
    n = input_ids.shape[1]
    x = (tables.word_embeddings.weight[input_ids]
         + tables.position_embeddings.weight[:n]
         + tables.token_type_embeddings.weight[0])
    return layer_norm(x.detach(), _linear_of(tables.LayerNorm), tables.LayerNorm.eps)


def sinusoidal_positions(n: int, d: int) -> Tensor:
    """The original Transformer's fixed positions: ``sin``/``cos`` waves of ``d / 2``
    wavelengths from ``2 pi`` to ``10000 * 2 pi``, one ``(n, d)`` row per position."""
    positions = torch.arange(n, dtype=torch.float32)[:, None]
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(0, d, 2) / d)
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies)
    return table


@torch.no_grad()
def encoder_stack(model: torch.nn.Module, input_ids: Tensor,
                  attention_mask: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
    """Run a whole ``BertModel`` encoder with the functions above.

    Returns the hidden states (the embeddings, then each layer's output: ``layers + 1``
    tensors, like ``output_hidden_states=True``) and each layer's attention weights.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    mask = bidirectional_mask(input_ids.shape[1]) & padding_mask(attention_mask)
    num_heads = model.config.num_attention_heads
    hidden, attentions = [embed(model, input_ids)], []
    for layer in model.encoder.layer:
        x, attention = encoder_layer(hidden[-1], weights_from_bert_layer(layer), num_heads, mask)
        hidden.append(x)
        attentions.append(attention)
    return hidden, attentions


def attention_to_offset(attentions: list[Tensor], attention_mask: Tensor,
                        offset: int = -1) -> Tensor:
    """How much each head attends ``offset`` tokens away (``-1``: the previous token).

    ``attentions`` holds one ``(batch, h, n, n)`` tensor per layer.  Returns ``(layers, h)``:
    the mean weight from a real token to the real token ``offset`` places from it.
    """
    if offset == 0:
        raise ValueError("offset 0 is a token attending to itself; use the diagonal")
    weights = torch.stack(attentions)  # (layers, batch, h, n, n)
    pairs = weights.diagonal(offset=offset, dim1=-2, dim2=-1)  # query i, key i + offset
    real = attention_mask.bool()
    k = abs(offset)
    valid = (real[:, k:] & real[:, :-k])[None, :, None, :].float()
    return (pairs * valid).sum(dim=(1, 3)) / valid.sum(dim=(1, 3))
