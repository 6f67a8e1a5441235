"""The drawn diagrams (issue 19): each says what the run's values are, and refuses bad input."""

import matplotlib
import pytest

from llmbook import plots

matplotlib.use("Agg")


def texts(fig) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_masking_counts_each_kind_of_corruption_and_shows_the_targets():
    original = ["the", "film", "was", "dull", "and", "long"]
    corrupted = ["the", "[MASK]", "was", "cat", "and", "long"]
    selected = [False, True, False, True, False, True]
    fig = plots.plot_masking(original, corrupted, selected)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["masked: 1", "random: 1", "kept: 1"]
    shown = texts(fig)
    assert shown.count("film") == 1 and "dull" in shown and "cat" in shown  # targets on top
    with pytest.raises(ValueError, match="one entry per token"):
        plots.plot_masking(original, corrupted[:-1], selected)


def test_lora_update_states_the_weight_counts():
    shown = texts(plots.plot_lora_update(384, 384, 8))
    assert "frozen: 147,456 weights" in shown and "trainable (B, A): 6,144 (4.2% of W)" in shown
    assert "B: 384 x 8" in shown and "A: 8 x 384" in shown
    with pytest.raises(ValueError, match="rank must be >= 1"):
        plots.plot_lora_update(384, 384, 0)


def test_prompt_prefix_distillation_and_serving_diagrams_carry_their_settings():
    shown = texts(plots.plot_prompt_tuning(20, ["a", "fine", "film"], layers=6))
    assert "20 trainable prompt vectors" in shown and "frozen Transformer (6 layers)" in shown
    assert "... layer 6" in shown and "v20" in shown and "v3" not in shown  # v1 v2 ... v20
    shown = texts(plots.plot_distillation(6, 4, temperature=2.0, alpha=0.5))
    assert "teacher: 6 layers (frozen)" in shown and "softmax(z / 2)" in shown
    assert "0.5 x KL" in shown and "0.5 x CE(gold)" in shown
    shown = texts(plots.plot_serving_path(max_batch=32, max_wait_ms=5, queue_texts=256))
    assert "micro-batch\n<= 32 texts\nor 5 ms" in shown and "queue\n<= 256 texts" in shown
