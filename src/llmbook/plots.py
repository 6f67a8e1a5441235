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


def plot_sweep(table, x: str, xlabel: str, metric: str = "accuracy", baseline: float | None = None):
    """``metric`` against a compression setting (chapter 10), with an optional dashed floor."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(table[x], table[metric], "o-", color="#2e75b6")
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", lw=1, label="tolerance")
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"validation {metric}")
    fig.tight_layout()
    return fig


def plot_latency_accuracy(table, latency: str = "p50_ms_b1", label: str = "variant"):
    """Latency against accuracy, one labelled point per model variant (chapter 10)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(table[latency], table["accuracy"], color="#c55a11", zorder=3)
    for i, (_, row) in enumerate(table.iterrows()):  # alternate above/below: fewer overlaps
        ax.annotate(row[label], (row[latency], row["accuracy"]), fontsize=8,
                    xytext=(4, 5 if i % 2 == 0 else -11), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(plt.matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"latency, log scale ({latency.replace('_', ' ')})")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_capacity(traffic, replicas, per_replica: float):
    """Replicas needed against traffic for a measured per-replica capacity (chapter 11)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.step(traffic, replicas, where="post", color="#2e75b6")
    ax.set_xlabel("traffic (requests per second)")
    ax.set_ylabel("replicas")
    ax.set_title(f"capacity plan: {per_replica:.0f} requests/s per replica")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_lr_sweep(logs: Mapping[float, Sequence[Mapping]], accuracy: Mapping[float, float]):
    """Chapter 9's learning-rate sweep: training loss against step for each rate (left) and
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


def plot_peft_tradeoff(table, x: str = "trainable %", y: str = "test accuracy",
                       label: str = "method"):
    """Accuracy against the share of trained parameters (log scale), one point per method
    (chapter 6)."""
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
    (chapter 6)."""
    names = list(ranks)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.5))
    ax.barh(names, [ranks[n] for n in names], color="#2e75b6")
    ax.axvline(initial, color="grey", ls="--", lw=1, label=f"initial rank {initial}")
    ax.invert_yaxis()
    ax.set_xlabel("rank after training")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_token_attributions(rows: Sequence[tuple[str, Sequence[str], Sequence[float]]],
                            width: float = 11.0):
    """Texts as coloured tokens: red pushes towards the explained class, blue away (chapter 13).

    ``rows`` are ``(title, tokens, scores)``; colours are scaled per row by its largest
    ``|score|`` (merge WordPiece pieces first with :func:`llmbook.explain.merge_wordpieces`).
    """
    fig, ax = plt.subplots(figsize=(width, 1.0))
    ax.axis("off")
    transform = plt.matplotlib.transforms.blended_transform_factory(ax.transAxes, ax.transData)
    renderer = fig.canvas.get_renderer()
    cmap, line = plt.get_cmap("coolwarm"), 0.0
    for title, tokens, scores in rows:
        scores = np.asarray(scores, dtype=float)
        scale = max(float(np.abs(scores).max()), 1e-12)
        ax.text(0, line, title, transform=transform, fontsize=9, color="#444444", va="center")
        line, x = line - 1, 0.0
        for token, score in zip(tokens, scores, strict=True):
            piece = ax.text(x, line, token, transform=transform, fontsize=10.5, va="center")
            extent = piece.get_window_extent(renderer).transformed(ax.transAxes.inverted())
            if extent.x1 > 1 and x > 0:  # wrap to the next line
                line, x = line - 1, 0.0
                piece.set_position((x, line))
                extent = piece.get_window_extent(renderer).transformed(
                    ax.transAxes.inverted())
            piece.set_bbox({"facecolor": cmap(0.5 + 0.5 * score / scale), "pad": 1.2,
                            "edgecolor": "none"})
            x = extent.x1 + 0.007
        line -= 1.4
    ax.set_ylim(line + 0.6, 0.6)
    fig.set_size_inches(width, 0.32 * (0.6 - line) + 0.2)
    return fig


def plot_attention_maps(tokens: Sequence[str], maps: np.ndarray, columns: int = 3):
    """Attention weights of every layer, averaged over heads (``maps``: layers, heads, q, k)."""
    layers = maps.shape[0]
    rows = int(np.ceil(layers / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.9 * rows))
    for layer, ax in enumerate(np.atleast_1d(axes).ravel()):
        if layer >= layers:
            ax.axis("off")
            continue
        ax.imshow(maps[layer].mean(axis=0), cmap="Blues", vmin=0)
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
        ax.set_title(f"layer {layer + 1} (mean of {maps.shape[1]} heads)", fontsize=9)
    fig.supxlabel("attended token (key)")
    fig.supylabel("attending token (query)")
    fig.tight_layout()
    return fig


def plot_precision_coverage(curves: Mapping[str, object], chosen: Mapping[str, tuple] = ()):
    """Precision against coverage, one line per curve (``precision_coverage`` tables), with
    ``chosen[name] = (coverage, precision)`` marked (chapter 12)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, curve in curves.items():
        ax.plot(curve["coverage"], curve["precision"], label=name)
    for name, (coverage, precision) in dict(chosen).items():
        ax.plot(coverage, precision, "o", markersize=8, label=name)
    ax.set_xlabel("coverage (share of messages routed automatically)")
    ax.set_ylabel("precision (share routed correctly)")
    ax.set_xlim(0, 1.02)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def plot_sentiment_index(alerts, dates, change_date=None):
    """Daily index (dots), its rolling mean, the alert level and alert days (chapter 12).

    ``alerts`` is the table of :func:`llmbook.applications.drop_alert`, one row per date.
    """
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.plot(dates, alerts["index"], ".", color="#9dc3e6", label="daily index")
    ax.plot(dates, alerts["rolling"], color="#1f4e79", lw=2, label="rolling mean")
    ax.axhline(alerts["level"].iloc[0], color="crimson", ls="--", lw=1, label="alert level")
    alert_dates = np.asarray(dates)[alerts["alert"].to_numpy()]
    if len(alert_dates):
        ax.plot(alert_dates, alerts["rolling"][alerts["alert"]], "v", color="crimson",
                label="alert")
    if change_date is not None:
        ax.axvline(change_date, color="grey", ls=":", label="planted change")
    ax.set_ylabel("mean P(positive)")
    ax.legend(loc="lower left", fontsize=8, ncol=3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def plot_projection(points: np.ndarray, tags: Sequence[str], highlight=None):
    """A 2-D scatter of embeddings coloured by tag, with ``highlight`` rows circled."""
    fig, ax = plt.subplots(figsize=(7, 5.5))
    tags = np.asarray(tags)
    for tag in sorted(set(tags)):
        chosen = tags == tag
        ax.scatter(points[chosen, 0], points[chosen, 1], s=12, alpha=0.7, label=tag)
    if highlight is not None:
        ax.scatter(points[highlight, 0], points[highlight, 1], s=90, facecolors="none",
                   edgecolors="black", label="recommended")
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.legend(fontsize=8, markerscale=1.5)
    fig.tight_layout()
    return fig


def plot_learning_curves(summary, x: str = "k", label: str = "learner"):
    """Mean accuracy against training-set size with a ±1 std band, one line per learner
    (chapter 7: ``summary`` from :func:`llmbook.fewshot.curve_summary`)."""
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
    """Heat-map of an accuracy table with the values written in (chapter 8)."""
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
    per task (chapter 8: ``stages`` from :func:`llmbook.transfer.continual_learning`)."""
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
