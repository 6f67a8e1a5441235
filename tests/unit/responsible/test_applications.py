"""Triage with abstention, the sentiment index, and embedding recommendation (applications)."""

import numpy as np
import pandas as pd
import pytest

from llmbook.responsible import (
    ABSTAIN,
    abstention_report,
    choose_threshold,
    drop_alert,
    interest_profile,
    keyword_tags,
    nearest_neighbours,
    precision_coverage,
    project_2d,
    route,
    synthetic_stream,
    tag_agreement,
)


@pytest.fixture
def calibrated():
    """Synthetic scores where higher confidence really means more often correct."""
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 2_000)
    correct = rng.uniform(size=2_000) < confidence
    return confidence, correct


def test_precision_coverage_trades_coverage_for_precision(calibrated):
    confidence, correct = calibrated
    curve = precision_coverage(confidence, correct)
    assert curve["coverage"].iloc[0] == 1.0
    assert curve["precision"].iloc[0] == pytest.approx(correct.mean())
    assert np.all(np.diff(curve["coverage"]) < 0)  # strictly fewer messages kept
    top_decile = curve[curve["coverage"] <= 0.1]["precision"].iloc[0]
    assert top_decile > curve["precision"].iloc[0] + 0.1
    brute = [correct[confidence >= t].mean() for t in curve["threshold"][::97]]
    np.testing.assert_allclose(curve["precision"][::97], brute)


def test_choose_threshold_reaches_the_target_with_most_coverage(calibrated):
    confidence, correct = calibrated
    threshold = choose_threshold(confidence, correct, 0.85)
    report = abstention_report(confidence, correct, threshold)
    assert report["precision"] >= 0.85
    below = confidence[confidence < threshold].max()
    assert abstention_report(confidence, correct, below)["precision"] < 0.85
    with pytest.raises(ValueError, match="no threshold"):
        choose_threshold(confidence, np.zeros_like(correct), 0.5)
    with pytest.raises(ValueError):
        precision_coverage([0.9], [True, False])


def test_route_abstains_below_threshold():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45]])
    routes = route(probabilities, 0.7, routes=("neg", "pos"))
    assert routes.tolist() == ["neg", "pos", ABSTAIN]
    with pytest.raises(ValueError):
        route(probabilities[:, :1], 0.5)


def test_synthetic_stream_plants_the_change_without_reusing_texts():
    labels = np.array(["neg"] * 300 + ["pos"] * 300)
    stream = synthetic_stream(labels, days=20, per_day=10, change_day=12,
                              shares_before={"neg": 0.2, "pos": 0.8},
                              shares_after={"neg": 0.8, "pos": 0.2})
    assert len(stream) == 200 and stream["position"].is_unique
    negative = pd.Series(labels[stream["position"]] == "neg").groupby(stream["day"]).mean()
    assert negative.loc[:11].mean() < 0.4 and negative.loc[12:].mean() > 0.6
    with pytest.raises(ValueError, match="not enough"):
        synthetic_stream(labels[:20], 20, 10, 12, {"neg": 1.0}, {"pos": 1.0})


def test_drop_alert_fires_after_a_drop_and_not_before():
    wiggle = 0.1 * (-1.0) ** np.arange(60)  # day-to-day noise, no trend
    values = np.r_[np.full(40, 0.5), np.full(20, 0.2)] + wiggle
    alerts = drop_alert(pd.Series(values), window=5, calibration_days=20)
    first = alerts.index[alerts["alert"]][0]
    # level = 0.5 - 3 * 0.1026 / sqrt(5) = 0.362; days 37-41 average (0.4+0.6+0.4+0.3+0.1)/5
    assert first == 41
    assert alerts["alert"].iloc[41:].all()
    assert not alerts["alert"].iloc[:40].any() and alerts["rolling"].iloc[:4].isna().all()
    with pytest.raises(ValueError):
        drop_alert(pd.Series(values), window=5, calibration_days=3)


def test_nearest_neighbours_find_self_first():
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(50, 8))
    indices, similarities = nearest_neighbours(embeddings, embeddings[[3, 7]], k=4)
    assert indices[:, 0].tolist() == [3, 7]
    np.testing.assert_allclose(similarities[:, 0], 1.0, atol=1e-9)
    assert np.all(np.diff(similarities, axis=1) <= 1e-12)
    with pytest.raises(ValueError):
        nearest_neighbours(embeddings, embeddings[:1, :4], k=2)


def test_interest_profile_tags_and_projection():
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(interest_profile(embeddings, [0, 1]), [2 ** -0.5, 2 ** -0.5])
    agreement, chance = tag_agreement(np.array([[1], [0], [0], [2]]), ["a", "a", "b", "b"])
    assert agreement == 0.75 and chance == 0.5
    assert keyword_tags(["A horror gem", "war and comedy", "nothing", "Westerns!"]) == [
        "horror", None, None, "western"]
    assert project_2d(np.random.default_rng(0).normal(size=(10, 5))).shape == (10, 2)


def test_tweets_load_with_labels_and_topics():
    from llmbook.data import TWEET_SENTIMENTS, load_tweets
    from llmbook.responsible import AIRLINE_PATTERN, APPLE_PATTERN, tweets_about

    tweets = load_tweets()
    assert len(tweets) > 30_000 and tweets["text"].is_unique
    assert set(tweets["sentiment"]) == set(TWEET_SENTIMENTS)
    airline = tweets_about(tweets, AIRLINE_PATTERN)
    assert len(airline) > 10_000 and airline["text"].str.contains("@", regex=False).all()
    assert len(tweets_about(tweets, APPLE_PATTERN)) > 1_000


def test_application_figures_render(calibrated):
    from llmbook.plots import plot_precision_coverage, plot_projection, plot_sentiment_index

    confidence, correct = calibrated
    figure = plot_precision_coverage({"all": precision_coverage(confidence, correct)},
                                     {"chosen": (0.5, 0.9)})
    assert len(figure.axes[0].lines) == 2
    daily = pd.Series(np.r_[np.full(30, 0.6), np.full(10, 0.2)])
    dates = pd.date_range("2026-01-01", periods=40)
    figure = plot_sentiment_index(drop_alert(daily, 3, 10), dates, dates[30])
    assert any(line.get_label() == "alert" for line in figure.axes[0].lines)
    points = np.random.default_rng(0).normal(size=(6, 2))
    figure = plot_projection(points, ["a", "b"] * 3, highlight=[0, 1])
    assert len(figure.axes[0].collections) == 3
