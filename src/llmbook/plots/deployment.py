"""Figures of the Deployment chapters (10 and 11)."""

from __future__ import annotations

import matplotlib.pyplot as plt


def plot_latency_accuracy(table, latency: str = "p50_ms_b1", label: str = "variant"):
    """Latency against accuracy, one labelled point per model variant (chapter 14)."""
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
    """Replicas needed against traffic for a measured per-replica capacity (chapter 15)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.step(traffic, replicas, where="post", color="#2e75b6")
    ax.set_xlabel("traffic (requests per second)")
    ax.set_ylabel("replicas")
    ax.set_title(f"capacity plan: {per_replica:.0f} requests/s per replica")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_stream_load(levels):
    """Time to first token (p50, p99) and aggregate tokens/s against concurrent streams
    (chapter 15; ``levels``: the rows of
    :func:`llmbook.deployment.stream_load.stream_benchmark`)."""
    users = [row["concurrency"] for row in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(users, [row["ttft_p50_ms"] for row in levels], "o-", label="p50")
    left.plot(users, [row["ttft_p99_ms"] for row in levels], "s--", label="p99")
    left.set_ylabel("time to first token (ms)")
    left.legend()
    right.plot(users, [row["tokens_per_s"] for row in levels], "o-", color="#2e75b6")
    right.set_ylabel("tokens per second, all streams")
    right.set_ylim(bottom=0)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(users, [str(u) for u in users])
        ax.set_xlabel("concurrent streams")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
