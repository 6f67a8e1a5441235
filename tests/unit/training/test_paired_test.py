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


def test_paired_bootstrap_interval_and_seeds():
    import numpy as np

    from llmbook.training.evaluation import paired_bootstrap

    rng = np.random.default_rng(1)
    b = rng.random(400) < 0.7
    a = b.copy()
    a[:60] = True  # A fixes some of B's mistakes and breaks nothing
    clear = paired_bootstrap(a, b)
    assert clear["gap"] == pytest.approx(a.mean() - b.mean())
    assert 0 < clear["low"] <= clear["gap"] <= clear["high"]
    assert clear["verdict"] == "beyond the noise"
    same = paired_bootstrap(b, b)
    assert same["low"] == same["high"] == 0 and same["verdict"] == "within the noise"
    swapped = paired_bootstrap(rng.permutation(b), b)  # same accuracy, different examples
    assert swapped["low"] < 0 < swapped["high"]
    # rows are seeds: each example's gap is averaged over the seeds before resampling
    seeds = paired_bootstrap(np.stack([a, b]), np.stack([b, b]))
    assert seeds["gap"] == pytest.approx((a.mean() - b.mean()) / 2)
    with pytest.raises(ValueError, match="same examples"):
        paired_bootstrap(np.stack([a, b]), b)
