"""Matplotlib figures shared by the chapters (concept map, data overview, training curves)."""

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


def plot_training_curves(train_log: Sequence[Mapping], eval_log: Sequence[Mapping] = (),
                         metric: str = "accuracy"):
    """Training loss, learning rate and validation ``metric`` against optimizer steps."""
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(11, 3.6))
    steps = [row["step"] for row in train_log]
    ax_loss.plot(steps, [row["loss"] for row in train_log], label="train loss", color="#2e75b6")
    if eval_log:
        eval_steps = [row["step"] for row in eval_log]
        ax_loss.plot(eval_steps, [row["eval_loss"] for row in eval_log], "o-", color="#c55a11",
                     label="validation loss")
        ax_metric = ax_loss.twinx()
        ax_metric.plot(eval_steps, [row[f"eval_{metric}"] for row in eval_log], "s--",
                       color="#548235", label=f"validation {metric}")
        ax_metric.set_ylabel(f"validation {metric}")
        ax_metric.legend(loc="center right")
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper right")
    ax_loss.set_title("loss and validation metric")
    ax_lr.plot(steps, [row["lr"] for row in train_log], color="#7030a0")
    ax_lr.set_xlabel("optimizer step")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("learning-rate schedule")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], label_names: Sequence[str], ax=None):
    """Counts of true (rows) against predicted (columns) labels."""
    matrix = np.asarray(matrix)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(label_names)), label_names)
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return ax.figure


def plot_results(table, metric: str = "accuracy", label: str = "model", baseline: float = 0.5):
    """Horizontal bars of ``metric`` per row of a results table, with a dashed baseline."""
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(table) + 1.2))
    bars = ax.barh(table[label], table[metric], color="#2e75b6")
    ax.bar_label(bars, fmt="%.3f", padding=3)
    ax.axvline(baseline, color="grey", ls="--", lw=1)
    ax.set_xlim(0, 1.08)
    ax.invert_yaxis()
    ax.set_xlabel(f"test {metric}")
    fig.tight_layout()
    return fig


def plot_lr_schedules(schedules: Mapping[str, Sequence[float]]):
    """Learning rate against optimizer step, one line per named schedule."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, rates in schedules.items():
        ax.plot(range(1, len(rates) + 1), rates, label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_seed_comparison(values: Mapping[str, Sequence[float]], metric: str = "accuracy"):
    """Each seed's result as a dot and the mean ± standard deviation as a bar, per model."""
    fig, ax = plt.subplots(figsize=(6.5, 0.8 * len(values) + 1.4))
    for row, results in enumerate(values.values()):
        results = np.asarray(results, dtype=float)
        ax.scatter(results, np.full(len(results), row), color="#2e75b6", zorder=3,
                   label="one seed" if row == 0 else None)
        ax.errorbar(results.mean(), row, xerr=results.std(ddof=1) if len(results) > 1 else 0,
                    fmt="D", color="#c55a11", capsize=6, zorder=4,
                    label="mean ± std" if row == 0 else None)
    ax.set_yticks(range(len(values)), list(values))
    ax.set_ylim(-0.7, len(values) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig
