import matplotlib
import numpy as np
import pytest

from llmbook import plots
from llmbook.plots.foundations import CONCEPT_EDGES, _tree_layout

matplotlib.use("Agg")


def test_concept_map_layout_centres_parents_over_children():
    layout = _tree_layout(CONCEPT_EDGES)
    assert layout["Large pretrained model"][1] == 0
    ft = layout["Fine-tuning"][0]
    kids = [layout["Full fine-tuning"][0], layout["Parameter-efficient\nfine-tuning"][0]]
    assert ft == pytest.approx(np.mean(kids))
    assert len({x for x, y in layout.values() if y == -2}) == 4  # leaves do not overlap


def test_concept_map_rejects_two_roots():
    with pytest.raises(ValueError, match="one root"):
        _tree_layout([("a", "b"), ("c", "d")])


def test_figures_draw():
    fig = plots.plot_concept_map()
    labels = [t.get_text() for t in fig.axes[0].texts if t.get_text()]
    assert len(labels) == 9 and "Zero-shot learning" in labels
    fig = plots.plot_class_balance({"rt": {"train": [3, 4]}}, ["neg", "pos"])
    assert len(fig.axes) == 1
    fig = plots.plot_length_histograms({"rt": np.array([3, 5, 9])}, max_length=8)
    assert fig.axes[0].get_title().startswith("rt")


def test_seed_comparison_and_training_curves():
    fig = plots.plot_seed_comparison({"a": [0.8, 0.82, 0.81], "b": [0.7]}, metric="test accuracy")
    assert fig.axes[0].get_xlabel() == "test accuracy"
    log = [{"step": s, "loss": 1 / s, "lr": 0.1} for s in range(1, 5)]
    evals = [{"step": 4, "eval_loss": 0.3, "eval_accuracy": 0.9}]
    fig = plots.plot_training_curves(log, evals)
    assert len(fig.axes) == 3  # loss, learning rate, and the twin axis for the metric
    fig = plots.plot_training_curves(log, [{"step": 4, "eval_loss": 0.3}])  # pre-training
    assert len(fig.axes) == 2  # no metric, no twin axis
