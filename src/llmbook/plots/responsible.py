"""Figures of the Applications and responsibility chapters (12 and 13)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def plot_token_attributions(rows: Sequence[tuple[str, Sequence[str], Sequence[float]]],
                            width: float = 11.0):
    """Texts as coloured tokens: red pushes towards the explained class, blue away (chapter 17).

    ``rows`` are ``(title, tokens, scores)``; colours are scaled per row by its largest
    ``|score|`` (merge WordPiece pieces first with
    :func:`llmbook.responsible.explain.merge_wordpieces`).
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
    ``chosen[name] = (coverage, precision)`` marked (chapter 16)."""
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
    """Daily index (dots), its rolling mean, the alert level and alert days (chapter 16).

    ``alerts`` is the table of :func:`llmbook.responsible.applications.drop_alert`, one row per
    date.
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
