"""Figures of the Foundations chapters (concepts and chapter 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

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
