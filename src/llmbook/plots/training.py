"""Matplotlib figures shared by the chapters (concept map, data overview, training curves)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def plot_training_curves(train_log: Sequence[Mapping], eval_log: Sequence[Mapping] = (),
                         metric: str = "accuracy"):
    """Training loss, learning rate and validation ``metric`` against optimizer steps
    (the metric is left out when the evaluations did not record it, as in pre-training)."""
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(11, 3.6))
    steps = [row["step"] for row in train_log]
    ax_loss.plot(steps, [row["loss"] for row in train_log], label="train loss", color="#2e75b6")
    if eval_log:
        eval_steps = [row["step"] for row in eval_log]
        ax_loss.plot(eval_steps, [row["eval_loss"] for row in eval_log], "o-", color="#c55a11",
                     label="validation loss")
        if all(f"eval_{metric}" in row for row in eval_log):
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


def plot_sweep(table, x: str, xlabel: str, metric: str = "accuracy", baseline: float | None = None):
    """``metric`` against a compression setting (chapter 14), with an optional dashed floor."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(table[x], table[metric], "o-", color="#2e75b6")
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", lw=1, label="tolerance")
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"validation {metric}")
    fig.tight_layout()
    return fig


def plot_lr_sweep(logs: Mapping[float, Sequence[Mapping]], accuracy: Mapping[float, float]):
    """Chapter 13's learning-rate sweep: training loss against step for each rate (left) and
    the best validation accuracy against the rate, on a log axis (right)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.6))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(logs)))
    for color, (rate, log) in zip(colors, logs.items(), strict=True):
        ax_loss.plot([row["step"] for row in log], [row["loss"] for row in log], color=color,
                     label=f"lr = {rate:.0e}")
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("training loss")
    ax_loss.legend(fontsize="small")
    ax_acc.semilogx(list(accuracy), list(accuracy.values()), "o-", color="#2e75b6")
    ax_acc.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax_acc.set_xlabel("peak learning rate")
    ax_acc.set_ylabel("best validation accuracy")
    ax_acc.legend()
    fig.tight_layout()
    return fig
