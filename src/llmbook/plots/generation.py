"""Figures of the Generative models part (chapter "Generating text and the KV cache")."""

from __future__ import annotations

import matplotlib.pyplot as plt

COLOURS = ("#2e75b6", "#c55a11", "#548235", "#7030a0")


def plot_kv_cache_timing(table, model_name: str = "SmolLM2-135M"):
    """Milliseconds per new token against new tokens, with and without the KV cache
    (``table`` as :func:`llmbook.generation.kv_cache.cache_timing` returns it)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for colour, column in zip(COLOURS, ("with cache", "without cache"), strict=False):
        ax.plot(table.index, table[column] * 1000, marker="o", color=colour, label=column)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(table.index), [str(n) for n in table.index])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("new tokens generated (log scale)")
    ax.set_ylabel("ms per new token")
    ax.set_title(f"{model_name}: greedy decoding, batch of one")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_temperature_tradeoff(tables: dict, x: str = "distinct-2",
                              y: str = "perplexity (other model)"):
    """Diversity against quality over temperature: one line per generating model, one point
    per temperature (``tables``: model name -> table indexed by temperature)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for colour, (name, table) in zip(COLOURS, tables.items(), strict=False):
        ax.plot(table[x], table[y], marker="o", color=colour, label=name)
        for temperature, row in table.iterrows():
            ax.annotate(f"T={temperature:g}", (row[x], row[y]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel(f"{x} (diversity: higher is more varied)")
    ax.set_ylabel(f"{y}, log scale (lower reads as more fluent)")
    ax.legend(title="samples from")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
