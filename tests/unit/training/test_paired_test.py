"""McNemar's exact test for two models on the same examples."""

import pytest

from llmbook.training.evaluation import paired_test


def test_paired_test_by_hand():
    # A alone right on 3 examples, B alone on none: p = 2 * 0.5**3 under a fair coin
    result = paired_test([1, 1, 1, 0, 1], [0, 0, 0, 0, 1])
    assert (result["only_a"], result["only_b"]) == (3, 0)
    assert result["p_value"] == pytest.approx(0.25) and result["gap"] == pytest.approx(0.6)
    assert paired_test([1, 0], [1, 0])["p_value"] == 1.0  # no discordant pair, no evidence
    balanced = paired_test([1, 0] * 10, [0, 1] * 10)
    assert balanced["gap"] == 0 and balanced["p_value"] == pytest.approx(1.0)
    assert result["verdict"] == "within the noise"  # p = 0.25
    assert paired_test([1] * 8 + [0], [0] * 9)["verdict"] == "beyond the noise"  # p = 2 / 2**8


def test_paired_test_needs_the_same_examples():
    with pytest.raises(ValueError, match="same examples"):
        paired_test([1, 0], [1])
    with pytest.raises(ValueError):
        paired_test([], [])
