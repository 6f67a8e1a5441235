"""Figures of the Adaptation chapters (9-12, and learning from unlabelled data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def plot_peft_tradeoff(table, x: str = "trainable %", y: str = "test accuracy",
                       label: str = "method"):
    """Accuracy against the share of trained parameters (log scale), one point per method
    (chapter 10)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(table[x], table[y], color="#2e75b6", zorder=3)
    for _, row in table.iterrows():
        ax.annotate(row[label], (row[x], row[y]), fontsize=9, xytext=(5, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"{x} of the model's parameters (log scale)")
    ax.set_ylabel(y)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot_rank_allocation(ranks: Mapping[str, int], initial: int):
    """Rank AdaLoRA kept per adapted matrix, against the rank every matrix started with
    (chapter 10)."""
    names = list(ranks)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.5))
    ax.barh(names, [ranks[n] for n in names], color="#2e75b6")
    ax.axvline(initial, color="grey", ls="--", lw=1, label=f"initial rank {initial}")
    ax.invert_yaxis()
    ax.set_xlabel("rank after training")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_learning_curves(summary, x: str = "k", label: str = "learner"):
    """Mean accuracy against training-set size with a ±1 std band, one line per learner
    (chapter 11: ``summary`` from :func:`llmbook.adaptation.fewshot.curve_summary`)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in summary.groupby(label, sort=False):
        line, = ax.plot(rows[x], rows["mean"], "o-", label=name)
        spread = rows["std"].fillna(0)
        ax.fill_between(rows[x], rows["mean"] - spread, rows["mean"] + spread,
                        color=line.get_color(), alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(summary[x].unique()), [str(v) for v in sorted(summary[x].unique())])
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_accuracy_matrix(matrix, xlabel: str = "tested on", ylabel: str = "trained on"):
    """Heat-map of an accuracy table with the values written in (chapter 12)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    image = ax.imshow(matrix.to_numpy(), cmap="Blues", vmin=0.5, vmax=1.0)
    for (row, col), value in np.ndenumerate(matrix.to_numpy()):
        ax.text(col, row, f"{value:.3f}", ha="center", va="center",
                color="white" if value > 0.8 else "black")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns)
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, label="accuracy")
    fig.tight_layout()
    return fig


def plot_stages(stages, stage_names: Sequence[str]):
    """Accuracy on each task after each training stage, one line per strategy and one panel
    per task (chapter 12; ``stages`` from
    :func:`llmbook.adaptation.transfer.continual_learning`)."""
    tasks = list(dict.fromkeys(stages["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), sharey=True)
    for ax, task in zip(np.atleast_1d(axes), tasks, strict=True):
        for strategy, rows in stages[stages["task"] == task].groupby("strategy", sort=False):
            ax.plot(rows["stage"], rows["accuracy"], "o-", label=strategy)
        ax.set_xticks(range(1, len(stage_names) + 1), stage_names)
        ax.set_title(f"accuracy on {task}")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("test accuracy")
    np.atleast_1d(axes)[-1].legend()
    fig.tight_layout()
    return fig


def plot_threshold_tradeoff(table):
    """What a confidence threshold buys (learning from unlabelled data): the teacher's accuracy
    on the validation examples it is that sure of and their share (left), and the pool
    sentences kept, balanced per class (right); ``table`` from
    :func:`llmbook.adaptation.pseudo_labels.threshold_tradeoff`."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot(table["threshold"], table["accuracy of kept"], "o-", label="accuracy of kept")
    left.plot(table["threshold"], table["validation share kept"], "s--", label="share kept")
    left.set_xlabel("confidence threshold")
    left.set_title("validation: pseudo-label quality")
    left.legend()
    right.plot(table["threshold"], table["pool sentences kept"], "o-", color="#2e75b6")
    right.set_xlabel("confidence threshold")
    right.set_title("unlabelled pool: sentences kept")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
