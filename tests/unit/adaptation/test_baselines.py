import numpy as np
import pytest

from llmbook.adaptation import (
    VADER_DEFAULT_THRESHOLD,
    VADER_THRESHOLDS,
    LinearProbe,
    MajorityClass,
    TfidfLogisticRegression,
    VaderLexicon,
    run_baselines,
)
from llmbook.core import get_profile
from llmbook.data import load_sentiment, subsample

POSITIVE = [
    "This movie is wonderful, I loved every minute of it!",
    "A brilliant, beautiful and funny film. Highly recommended.",
    "Great acting and a great story: excellent.",
]
NEGATIVE = [
    "Terrible, boring and awful. I hated it.",
    "The worst film of the year, a painful waste of time.",
    "Dull, stupid and ugly.",
]


@pytest.fixture(scope="module")
def rotten_tomatoes():
    return load_sentiment("rotten_tomatoes")


def test_majority_class_predicts_the_most_frequent_label():
    model = MajorityClass().fit(["a", "b", "c", "d"], [1, 0, 1, 1])
    assert model.predict(["x", "y"]).tolist() == [1, 1]
    assert MajorityClass().fit(["a", "b", "c"], [0, 0, 1]).predict(["z"]).tolist() == [0]


def test_predict_before_fit_and_bad_labels_raise():
    with pytest.raises(RuntimeError, match="not fitted"):
        MajorityClass().predict(["x"])
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfLogisticRegression().predict(["x"])
    with pytest.raises(ValueError, match="one label per text"):
        MajorityClass().fit(["a", "b"], [1])
    with pytest.raises(ValueError, match="empty"):
        MajorityClass().fit([], [])


def test_vader_gets_obvious_examples_right():
    vader = VaderLexicon()
    assert vader.threshold == VADER_DEFAULT_THRESHOLD
    assert vader.predict(POSITIVE + NEGATIVE).tolist() == [1] * 3 + [0] * 3


def test_vader_fit_picks_the_grid_threshold_with_best_training_accuracy():
    texts = POSITIVE + NEGATIVE + ["It was fine, I guess.", "Not bad at all."]
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    vader = VaderLexicon().fit(texts, labels)
    assert vader.threshold in VADER_THRESHOLDS
    scores = vader.compound_scores(texts)
    best = max(np.mean((scores >= t) == labels) for t in VADER_THRESHOLDS)
    assert np.mean(vader.predict(texts) == labels) == best


def test_tfidf_learns_a_separable_toy_task():
    rng = np.random.default_rng(0)
    good, bad = ["superb", "delightful", "charming"], ["dreadful", "tedious", "clumsy"]
    filler = ["the", "film", "plot", "actors", "was", "and"]
    texts, labels = [], []
    for i in range(60):
        label = i % 2
        words = list(rng.choice(filler, 4)) + list(rng.choice(good if label else bad, 2))
        texts.append(" ".join(rng.permutation(words)))
        labels.append(label)
    model = TfidfLogisticRegression().fit(texts, labels)
    predictions = model.predict(["the plot was superb and charming", "tedious and clumsy actors"])
    assert predictions.tolist() == [1, 0]
    assert predictions.dtype == np.int64
    assert np.mean(model.predict(texts) == np.array(labels)) == 1.0


def test_linear_probe_beats_70_percent_on_rotten_tomatoes(rotten_tomatoes):
    train = subsample(rotten_tomatoes["train"], 200)
    validation = subsample(rotten_tomatoes["validation"], 200)
    probe = LinearProbe(max_length=64, batch_size=64).fit(train["text"], train["label"])
    predictions = probe.predict(validation["text"])
    assert predictions.shape == (200,) and set(np.unique(predictions)) <= {0, 1}
    accuracy = np.mean(predictions == np.asarray(validation["label"]))
    assert accuracy > 0.65, f"linear probe accuracy {accuracy:.3f}"


def test_run_baselines_returns_one_sane_row_per_baseline(rotten_tomatoes):
    train = subsample(rotten_tomatoes["train"], 64)
    test = subsample(rotten_tomatoes["validation"], 64)
    table = run_baselines(train, test, get_profile("smoke"))
    assert list(table.columns) == [
        "model",
        "accuracy",
        "macro_f1",
        "train_seconds",
        "predict_seconds",
    ]
    assert table["model"].tolist() == [
        MajorityClass.name,
        VaderLexicon.name,
        TfidfLogisticRegression.name,
        LinearProbe.name,
    ]
    assert table["accuracy"].between(0, 1).all() and table["macro_f1"].between(0, 1).all()
    assert (table[["train_seconds", "predict_seconds"]] >= 0).all().all()
    majority = table.set_index("model").loc[MajorityClass.name]
    assert majority["accuracy"] == pytest.approx(0.5)  # stratified, balanced subsets
    assert majority["macro_f1"] == pytest.approx(1 / 3)
    # every learned baseline does better than always answering the same label
    assert (table["accuracy"].iloc[1:] > 0.5).all()


def test_run_baselines_accepts_custom_baselines_and_checks_columns(rotten_tomatoes):
    train = subsample(rotten_tomatoes["train"], 20)
    test = subsample(rotten_tomatoes["validation"], 20)
    table = run_baselines(train, test, get_profile("smoke"), baselines=[MajorityClass()])
    assert table["model"].tolist() == [MajorityClass.name]
    with pytest.raises(ValueError, match="label"):
        run_baselines(train.remove_columns("label"), test, get_profile("smoke"))
