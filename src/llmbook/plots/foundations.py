"""Figures of the Foundations chapters: the concept map, chapter 1's data plots and chapter 2's
Transformer (a layer as boxes and arrows, an attention head, the masks, positions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

from llmbook.plots.shapes import BLUE, GREY, LIGHT, ORANGE, arrow, box

#: The source article's concept map (section 2.2), as parent -> children edges.
CONCEPT_EDGES: tuple[tuple[str, str], ...] = (
    ("Large pretrained model", "Pre-training"),
    ("Large pretrained model", "Fine-tuning"),
    ("Fine-tuning", "Full fine-tuning"),
    ("Fine-tuning", "Parameter-efficient\nfine-tuning"),
    ("Large pretrained model", "Transfer learning"),
    ("Transfer learning", "Few-shot learning"),
    ("Transfer learning", "Zero-shot learning"),
    ("Large pretrained model", "Continual learning"),
)


def _tree_layout(edges: Sequence[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Top-down tree layout: leaves evenly spaced, each parent centred over its children."""
    children: dict[str, list[str]] = {}
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
    roots = [p for p in children if all(p != c for _, c in edges)]
    if len(roots) != 1:
        raise ValueError(f"concept map needs exactly one root, found {roots}")
    positions: dict[str, tuple[float, float]] = {}
    next_leaf = [0.0]

    def place(node: str, depth: int) -> float:
        kids = children.get(node, [])
        if kids:
            x = float(np.mean([place(kid, depth + 1) for kid in kids]))
        else:
            x, next_leaf[0] = next_leaf[0], next_leaf[0] + 1.4
        positions[node] = (x, -float(depth))
        return x

    place(roots[0], 0)
    return positions


def plot_concept_map(edges: Sequence[tuple[str, str]] = CONCEPT_EDGES, ax=None):
    """Draw the concept map as boxes and arrows; returns the figure."""
    positions = _tree_layout(edges)
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 4))
    for parent, child in edges:
        (x0, y0), (x1, y1) = positions[parent], positions[child]
        ax.annotate(
            "", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
            arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.2},
        )
    depth_colors = ("#1f4e79", "#2e75b6", "#9dc3e6")
    for node, (x, y) in positions.items():
        color = depth_colors[min(int(-y), len(depth_colors) - 1)]
        ax.text(
            x, y, node, ha="center", va="center", fontsize=9.5,
            color="white" if y > -2 else "black",
            bbox={"boxstyle": "round,pad=0.45", "facecolor": color, "edgecolor": "none"},
        )
    xs = [x for x, _ in positions.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(y for _, y in positions.values()) - 0.5, 0.5)
    ax.axis("off")
    return ax.figure


def plot_class_balance(label_counts: Mapping[str, Mapping[str, Sequence[int]]], label_names):
    """One bar group per dataset and split: how many examples of each label.

    ``label_counts[dataset][split]`` is the count per label index.
    """
    fig, axes = plt.subplots(1, len(label_counts), figsize=(5 * len(label_counts), 3.4))
    for ax, (dataset, splits) in zip(np.atleast_1d(axes), label_counts.items(), strict=True):
        x = np.arange(len(splits))
        width = 0.8 / len(label_names)
        for i, label in enumerate(label_names):
            counts = [counts_by_label[i] for counts_by_label in splits.values()]
            bars = ax.bar(x + (i - (len(label_names) - 1) / 2) * width, counts, width, label=label)
            ax.bar_label(bars, fontsize=8)
        ax.set_xticks(x, list(splits))
        ax.set_title(dataset)
        ax.set_ylabel("examples")
        ax.legend()
    fig.tight_layout()
    return fig


def plot_length_histograms(lengths: Mapping[str, np.ndarray], max_length: int | None = None):
    """Token-length histogram per dataset, with the profile's ``max_length`` marked."""
    fig, axes = plt.subplots(1, len(lengths), figsize=(5 * len(lengths), 3.4))
    for ax, (name, values) in zip(np.atleast_1d(axes), lengths.items(), strict=True):
        ax.hist(values, bins=50, color="#2e75b6")
        if max_length is not None:
            ax.axvline(max_length, color="crimson", ls="--", label=f"max_length = {max_length}")
            ax.legend()
        ax.set_title(f"{name}: median {int(np.median(values))} tokens")
        ax.set_xlabel("tokens per text (with [CLS], [SEP])")
        ax.set_ylabel("texts")
    fig.tight_layout()
    return fig



def plot_encoder_layer(hidden: int, heads: int, intermediate: int, layers: int | None = None):
    """One post-norm encoder layer (BERT's): attention and feed-forward, each followed by a
    residual addition and LayerNorm.  The sizes label the boxes; returns the figure."""
    fig, ax = plt.subplots(figsize=(5.6, 6.2))
    stages = [  # (y, text, colour): bottom to top, the order the data flows
        (0.0, f"token + position embeddings\n(n x {hidden})", LIGHT),
        (1.3, f"multi-head self-attention\n{heads} heads x {hidden // heads} dims", BLUE),
        (2.4, "add & LayerNorm", ORANGE),
        (3.7, f"feed-forward: {hidden} -> {intermediate} -> {hidden}\nGELU", BLUE),
        (4.8, "add & LayerNorm", ORANGE),
        (6.1, f"layer output (n x {hidden})", LIGHT),
    ]
    for y, text, color in stages:
        box(ax, 0.0, y, text, color)
    for (y0, *_), (y1, *_) in zip(stages, stages[1:], strict=False):
        arrow(ax, (0.0, y0 + 0.35), (0.0, y1 - 0.35))
    for start, end in ((0.0, 2.4), (2.4, 4.8)):  # the residual paths skip each sublayer
        arrow(ax, (1.6, start), (1.6, end), connectionstyle="arc3,rad=0.5", linestyle="--")
        ax.text(2.05, (start + end) / 2, "residual", fontsize=8, color=GREY, rotation=90,
                va="center")
    ax.text(0.08, 0.62, "q, k, v", fontsize=8, color=GREY, ha="left", va="center")
    repeat = f"repeated {layers} times" if layers else "repeated in every layer"
    ax.add_patch(FancyBboxPatch((-1.9, 0.8), 4.2, 4.7, boxstyle="round,pad=0.05",
                                facecolor="none", edgecolor=GREY, linestyle=":"))
    ax.text(-1.8, 5.42, repeat, fontsize=8, color=GREY, va="top")
    ax.set_xlim(-2.1, 2.5)
    ax.set_ylim(-0.6, 6.6)
    ax.axis("off")
    return fig


def plot_attention_head(tokens: Sequence[str], weights: np.ndarray, title: str = "", ax=None):
    """Heatmap of one head's ``(n, n)`` attention weights: row = query, column = key."""
    weights = np.asarray(weights)
    if weights.shape != (len(tokens), len(tokens)):
        raise ValueError(f"weights of shape {weights.shape} do not match {len(tokens)} tokens")
    if ax is None:
        size = min(9.0, 2.5 + 0.22 * len(tokens))
        _, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(weights, cmap="Blues", vmin=0, vmax=max(float(weights.max()), 1e-9))
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("attended token (key)")
    ax.set_ylabel("attending token (query)")
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, label="attention weight")
    ax.figure.tight_layout()
    return ax.figure


def plot_masks(masks: dict[str, np.ndarray],
               tokens: Sequence[str] | dict[str, Sequence[str]] | None = None):
    """Boolean masks side by side (dark: the query may attend to the key), e.g. bidirectional
    vs causal.  ``tokens`` labels the axes: one list for all masks, or one per mask name.
    Masks of at most 12 tokens get their 0s and 1s written in."""
    fig, axes = plt.subplots(1, len(masks), figsize=(4.2 * len(masks), 4.2))
    for ax, (name, mask) in zip(np.atleast_1d(axes), masks.items(), strict=True):
        mask = np.asarray(mask, dtype=float)
        ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.25)
        if mask.shape[0] <= 12:  # small enough to write the 0s and 1s in
            for (i, j), allowed in np.ndenumerate(mask):
                ax.text(j, i, str(int(allowed)), ha="center", va="center", fontsize=7,
                        color="white" if allowed else GREY)
        labels = tokens.get(name) if isinstance(tokens, dict) else tokens
        labels = list(labels) if labels is not None else list(range(mask.shape[0]))
        ax.set_xticks(range(mask.shape[1]), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(mask.shape[0]), labels, fontsize=8)
        ax.set_xlabel("key (may be attended to)")
        ax.set_ylabel("query (attends)")
        ax.set_title(name, fontsize=10)
    fig.tight_layout()
    return fig


def plot_positions(tables: dict[str, np.ndarray]):
    """For each ``(positions, dims)`` table of position vectors, the cosine similarity of
    every pair of positions: a band along the diagonal means nearby positions look alike."""
    fig, axes = plt.subplots(1, len(tables), figsize=(4.6 * len(tables), 3.9))
    for ax, (name, table) in zip(np.atleast_1d(axes), tables.items(), strict=True):
        table = np.asarray(table, dtype=float)
        unit = table / np.linalg.norm(table, axis=1, keepdims=True)
        image = ax.imshow(unit @ unit.T, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xlabel("position")
        ax.set_ylabel("position")
        ax.set_title(name, fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, label="cosine similarity")
    fig.tight_layout()
    return fig
