"""Figures of the Generative models part (chapter "Generating text and the KV cache")."""

import matplotlib
import pandas as pd

from llmbook import plots

matplotlib.use("Agg")


def test_kv_cache_timing_draws_both_lines():
    table = pd.DataFrame({"with cache": [0.01, 0.011], "without cache": [0.02, 0.05]},
                         index=pd.Index([32, 64], name="new tokens"))
    fig = plots.plot_kv_cache_timing(table)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["with cache", "without cache"]
    assert fig.axes[0].get_lines()[1].get_ydata().tolist() == [20.0, 50.0]  # milliseconds


def test_temperature_tradeoff_has_a_line_per_model_and_a_label_per_point():
    table = pd.DataFrame({"distinct-2": [0.3, 0.9], "perplexity (other model)": [20.0, 300.0]},
                         index=pd.Index([0.5, 1.5], name="temperature"))
    fig = plots.plot_temperature_tradeoff({"SmolLM2": table, "GPT": table * 1.1})
    assert len(fig.axes[0].get_lines()) == 2
    assert [t.get_text() for t in fig.axes[0].texts][:2] == ["T=0.5", "T=1.5"]
