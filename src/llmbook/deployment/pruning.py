"""Pruning for chapter 14: unstructured magnitude pruning and structured attention-head pruning."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from llmbook.deployment.variants import encode


# ----------------------------------------------------------------------------- pruning
def _encoder_linears(model) -> list:
    """The ``nn.Linear`` layers inside the transformer blocks (not embeddings or the head)."""
    return [m for m in model.base_model.encoder.modules() if isinstance(m, torch.nn.Linear)]


def magnitude_prune(model, sparsity: float):
    """A copy of ``model`` with the smallest-magnitude ``sparsity`` of encoder weights zeroed.

    Global unstructured pruning: one threshold over all encoder linear weights.  The matrices
    keep their shape, so dense kernels do exactly the same work: this saves no time by itself.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    pruned = copy.deepcopy(model).eval()
    weights = [m.weight for m in _encoder_linears(pruned)]
    if sparsity == 0:
        return pruned
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    threshold = torch.kthvalue(magnitudes, max(1, int(sparsity * magnitudes.numel()))).values
    with torch.no_grad():
        for weight in weights:
            weight.mul_(weight.abs() > threshold)
    return pruned


def sparsity(model) -> float:
    """Fraction of encoder linear weights that are exactly zero."""
    weights = [m.weight.detach() for m in _encoder_linears(model)]
    return float(sum((w == 0).sum().item() for w in weights) / sum(w.numel() for w in weights))


def _attention_blocks(model) -> list:
    return [layer.attention for layer in model.base_model.encoder.layer]


def head_importance(model, tokenizer, texts: Sequence[str], labels: Sequence[int],
                    max_length: int, batch_size: int = 64) -> np.ndarray:
    """Importance of each attention head, shape ``(layers, heads)`` (Michel et al., 2019).

    A gate of value 1 multiplies each head's output; the importance of a head is the absolute
    gradient of the classification loss with respect to its gate, summed over ``texts``.
    """
    blocks = _attention_blocks(model)
    heads, size = blocks[0].self.num_attention_heads, blocks[0].self.attention_head_size
    gates = torch.ones(len(blocks), heads, requires_grad=True)
    hooks = [block.output.dense.register_forward_pre_hook(
        lambda _, args, i=i: (args[0] * gates[i].repeat_interleave(size),))
        for i, block in enumerate(blocks)]
    model.eval()
    try:
        for start in range(0, len(texts), batch_size):
            batch = {k: torch.from_numpy(v) for k, v in
                     encode(tokenizer, texts[start:start + batch_size], max_length).items()}
            target = torch.as_tensor(np.asarray(labels[start:start + batch_size]))
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, target,
                                                     reduction="sum")
            loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
    return gates.grad.abs().numpy()


def least_important_heads(importance: np.ndarray, count: int) -> dict[int, list[int]]:
    """The ``count`` lowest-importance heads as ``{layer: [head, ...]}`` (never a whole layer)."""
    order = np.argsort(importance, axis=None, kind="stable")
    chosen: dict[int, list[int]] = {}
    heads = importance.shape[1]
    for flat in order:
        if sum(map(len, chosen.values())) == count:
            break
        layer, head = divmod(int(flat), heads)
        if len(chosen.get(layer, [])) < heads - 1:
            chosen.setdefault(layer, []).append(head)
    return {layer: sorted(h) for layer, h in sorted(chosen.items())}


def prune_heads(model, heads: dict[int, Sequence[int]]):
    """A copy of ``model`` with the given heads *removed* (structured pruning).

    The query/key/value projections lose those heads' output rows and the attention output
    projection loses the matching input columns, so every matmul gets smaller.
    """
    pruned = copy.deepcopy(model).eval()
    for layer, drop in heads.items():
        attention = _attention_blocks(pruned)[layer]
        self_attention, size = attention.self, attention.self.attention_head_size
        keep_heads = [h for h in range(self_attention.num_attention_heads) if h not in set(drop)]
        if not keep_heads:
            raise ValueError(f"cannot remove every head of layer {layer}")
        index = torch.cat([torch.arange(h * size, (h + 1) * size) for h in keep_heads])
        for name in ("query", "key", "value"):
            setattr(self_attention, name, _slice_linear(getattr(self_attention, name), index, 0))
        attention.output.dense = _slice_linear(attention.output.dense, index, 1)
        self_attention.num_attention_heads = len(keep_heads)
        self_attention.all_head_size = len(keep_heads) * size
    return pruned


def _slice_linear(linear, index, dim: int):
    """A new ``nn.Linear`` keeping only ``index`` of its outputs (dim 0) or inputs (dim 1)."""
    weight = linear.weight.detach().index_select(dim, index).clone()
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            new.bias.copy_(linear.bias.detach() if dim == 1 else linear.bias[index])
    return new


def count_heads(model) -> int:
    return sum(block.self.num_attention_heads for block in _attention_blocks(model))
