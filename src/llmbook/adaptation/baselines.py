"""The four baselines of chapter 9 (sentiment fine-tuning), weakest to strongest.

Fine-tuning a transformer is only worth its cost if it beats cheaper methods, so chapter 9
scores these first, on the same splits:

* :class:`MajorityClass` -- always the most frequent training label (the floor);
* :class:`VaderLexicon` -- VADER's hand-built sentiment lexicon and rules, no learning but a
  threshold;
* :class:`TfidfLogisticRegression` -- word 1-2 gram TF-IDF features and a logistic regression;
* :class:`LinearProbe` -- a logistic regression on *frozen* MiniLM sentence embeddings
  (:func:`llmbook.models.embeddings.embed_texts`), i.e. what pretraining gives before any
  fine-tuning.

Each has ``fit(texts, labels) -> self`` and ``predict(texts) -> np.ndarray`` of ints
(0 negative, 1 positive); :func:`run_baselines` fits and scores them all into one table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from llmbook.core.utils import Timer
from llmbook.data.tokenization import check_texts
from llmbook.models.embeddings import embed_texts
from llmbook.models.loading import load_encoder, load_tokenizer
from llmbook.training.evaluation import classification_metrics

#: Thresholds on VADER's compound score that :meth:`VaderLexicon.fit` chooses from.
VADER_THRESHOLDS = (-0.5, -0.25, -0.1, -0.05, 0.0, 0.05, 0.1, 0.25, 0.5)

#: VADER's own cut-off for "positive", used before (or without) ``fit``.
VADER_DEFAULT_THRESHOLD = 0.05

SEED = 0


def _check_fit_inputs(texts, labels) -> tuple[list[str], np.ndarray]:
    texts = check_texts(texts)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(texts):
        raise ValueError(
            f"labels must be a 1-D sequence with one label per text, got shape {labels.shape} "
            f"for {len(texts)} texts"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers (0 negative, 1 positive), got {labels.dtype}")
    return texts, labels


def _not_fitted(name: str) -> RuntimeError:
    return RuntimeError(f"{name} is not fitted yet: call fit(texts, labels) before predict")


class MajorityClass:
    """Predicts the most frequent training label for every text (ties: the smaller label)."""

    name = "majority class"

    def __init__(self) -> None:
        self.label_: int | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> MajorityClass:
        _, labels = _check_fit_inputs(texts, labels)
        values, counts = np.unique(labels, return_counts=True)
        self.label_ = int(values[np.argmax(counts)])
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        if self.label_ is None:
            raise _not_fitted(type(self).__name__)
        return np.full(len(texts), self.label_, dtype=np.int64)


class VaderLexicon:
    """VADER (Hutto & Gilbert, 2014): positive iff the compound score is >= ``threshold``.

    VADER needs no training.  Its documented cut-off for "positive" is a compound score of
    0.05, used until ``fit`` is called.  ``fit`` only picks the threshold: the value of
    :data:`VADER_THRESHOLDS` with the highest training accuracy (ties go to the one closest
    to 0.05), a one-parameter calibration that is cheap and hard to overfit.
    """

    name = "VADER lexicon"

    def __init__(
        self,
        threshold: float = VADER_DEFAULT_THRESHOLD,
        grid: Sequence[float] = VADER_THRESHOLDS,
    ) -> None:
        self.threshold = float(threshold)
        self.grid = tuple(grid)
        if not self.grid:
            raise ValueError("grid must hold at least one threshold")
        self.analyzer = SentimentIntensityAnalyzer()

    def compound_scores(self, texts: Sequence[str]) -> np.ndarray:
        """VADER's compound score of each text, in [-1, 1]."""
        texts = check_texts(texts)
        return np.array([self.analyzer.polarity_scores(t)["compound"] for t in texts])

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> VaderLexicon:
        texts, labels = _check_fit_inputs(texts, labels)
        scores = self.compound_scores(texts)
        grid = sorted(self.grid, key=lambda t: abs(t - VADER_DEFAULT_THRESHOLD))
        accuracies = [np.mean((scores >= t).astype(int) == labels) for t in grid]
        self.threshold = float(grid[int(np.argmax(accuracies))])
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return (self.compound_scores(texts) >= self.threshold).astype(np.int64)


class TfidfLogisticRegression:
    """Word 1-2 gram TF-IDF (sublinear tf, ``min_df=2``) and an L2 logistic regression."""

    name = "TF-IDF + logistic regression"

    def __init__(self, C: float = 4.0) -> None:
        self.C = C
        self.pipeline_: Pipeline | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> TfidfLogisticRegression:
        texts, labels = _check_fit_inputs(texts, labels)
        self.pipeline_ = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
            LogisticRegression(C=self.C, max_iter=1000, random_state=SEED),
        ).fit(texts, labels)
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        if self.pipeline_ is None:
            raise _not_fitted(type(self).__name__)
        return self.pipeline_.predict(texts).astype(np.int64)


class LinearProbe:
    """Logistic regression on frozen, mean-pooled, unit-norm encoder embeddings.

    The encoder is never updated: this measures how linearly separable the classes already
    are in the pretrained representation.  The encoder and tokenizer are loaded on the first
    ``fit`` and kept for ``predict``.
    """

    name = "linear probe (frozen MiniLM)"

    def __init__(
        self,
        model_name: str | None = "minilm",
        max_length: int = 128,
        batch_size: int = 64,
        C: float = 1.0,
    ) -> None:
        self.model_name = model_name
        self.max_length = max_length
        self.batch_size = batch_size
        self.C = C
        self.classifier_: LogisticRegression | None = None
        self._encoder = None
        self._tokenizer = None
        self._embeddings: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The frozen embeddings the probe is trained on, shape ``(len(texts), hidden)``.

        Each distinct text is encoded once per probe: refitting on other subsets of the same
        texts (the few-shot curves of chapter 11) does not re-run the encoder.
        """
        texts = check_texts(texts)
        if self._encoder is None:
            self._tokenizer = load_tokenizer(self.model_name)
            self._encoder = load_encoder(self.model_name)
        new = [text for text in dict.fromkeys(texts) if text not in self._embeddings]
        if new:
            vectors = embed_texts(new, model_name=self.model_name, max_length=self.max_length,
                                  batch_size=self.batch_size, model=self._encoder,
                                  tokenizer=self._tokenizer)
            self._embeddings.update(zip(new, vectors, strict=True))
        return np.stack([self._embeddings[text] for text in texts])

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> LinearProbe:
        texts, labels = _check_fit_inputs(texts, labels)
        self.classifier_ = LogisticRegression(C=self.C, max_iter=1000, random_state=SEED)
        self.classifier_.fit(self.embed(texts), labels)
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        if self.classifier_ is None:
            raise _not_fitted(type(self).__name__)
        return self.classifier_.predict(self.embed(texts)).astype(np.int64)


def default_baselines(profile) -> list:
    """The four baselines, the linear probe sized by ``profile`` (model, length, batch)."""
    return [
        MajorityClass(),
        VaderLexicon(),
        TfidfLogisticRegression(),
        LinearProbe(
            model_name=profile.model_name,
            max_length=profile.max_length,
            batch_size=profile.eval_batch_size,
        ),
    ]


def run_baselines(train, test, profile, baselines: Sequence | None = None) -> pd.DataFrame:
    """Fit every baseline on ``train``, score it on ``test``: one row per baseline.

    ``train`` and ``test`` are ``datasets.Dataset`` with ``text`` and ``label`` columns.
    Columns: ``model``, ``accuracy``, ``macro_f1``, ``train_seconds``, ``predict_seconds``.
    ``baselines`` defaults to :func:`default_baselines` of ``profile``.
    """
    for split_name, split in (("train", train), ("test", test)):
        missing = {"text", "label"} - set(split.column_names)
        if missing:
            raise ValueError(f"{split_name} lacks column(s) {sorted(missing)}")
    baselines = default_baselines(profile) if baselines is None else list(baselines)
    train_texts, train_labels = list(train["text"]), np.asarray(train["label"])
    test_texts, test_labels = list(test["text"]), np.asarray(test["label"])
    rows = []
    for baseline in baselines:
        with Timer() as fit_timer:
            baseline.fit(train_texts, train_labels)
        with Timer() as predict_timer:
            predictions = baseline.predict(test_texts)
        metrics = classification_metrics(test_labels, predictions)
        rows.append(
            {
                "model": getattr(baseline, "name", type(baseline).__name__),
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "train_seconds": fit_timer.seconds,
                "predict_seconds": predict_timer.seconds,
            }
        )
    return pd.DataFrame(rows)
