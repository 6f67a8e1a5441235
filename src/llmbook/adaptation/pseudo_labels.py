"""Pseudo-labels (the chapter on learning from unlabelled data): a teacher labels unlabelled
in-domain sentences, and the part it is confident about joins the gold training set.

The unlabelled pool is sentences cut from the IMDb *train* reviews
(:func:`llmbook.data.sentences.review_sentences`: movie-review text the Rotten Tomatoes test set
never saw).  The teacher is a finished fine-tuning run; its class probabilities for the pool are
computed once per teacher and pool size and kept in ``runs/``.  :func:`confident_balanced`
keeps the sentences labelled with probability at least a threshold, the same number per class
(the most confident of each), so that a teacher that leans to one class does not hand its lean
on to the student.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, Features, Value

from llmbook.core.runs import cached_json, model_key
from llmbook.data.corpora import LABEL_NAMES, load_corpus
from llmbook.data.sentences import review_sentences
from llmbook.models.inference import load_for_inference, predict_proba

#: the pool is drawn once, with this seed, whatever the run's seed: rounds and seeds share it
POOL_SEED = 0


def unlabelled_pool(size: int) -> list[str]:
    """``size`` sentences of IMDb *train* reviews (no labels are read)."""
    return review_sentences(load_corpus("imdb")["train"]["text"], size, seed=POOL_SEED)


def teacher_probabilities(teacher: str | Path, texts: Sequence[str],
                          batch_size: int = 64) -> np.ndarray:
    """The teacher's class probabilities for ``texts``, ``(len(texts), classes)``."""
    tokenizer, model = load_for_inference(teacher)
    return predict_proba(model, tokenizer, list(texts), batch_size=batch_size)


def pool_probabilities(teacher: str | Path, size: int) -> np.ndarray:
    """:func:`teacher_probabilities` of the first ``size`` pool sentences, cached in ``runs/``
    (keyed on the teacher's run, not its path)."""
    key = {"teacher": model_key(str(teacher)), "pool_size": size, "pool_seed": POOL_SEED}
    rows = cached_json("pseudo-labels", key, lambda: teacher_probabilities(
        teacher, unlabelled_pool(size)).tolist())
    return np.asarray(rows, dtype=np.float32)


def confident_balanced(probabilities: np.ndarray, threshold: float) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """``(indices, labels)``: the rows whose top probability is at least ``threshold``, the
    same number per class (each class's most confident), in the order of the rows."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"a confidence threshold is a probability, got {threshold}")
    labels, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    per_class = [np.flatnonzero((labels == c) & (confidence >= threshold))
                 for c in range(probabilities.shape[1])]
    keep = min(len(rows) for rows in per_class)
    chosen = [rows[np.argsort(-confidence[rows], kind="stable")[:keep]] for rows in per_class]
    indices = np.sort(np.concatenate(chosen)).astype(np.int64)
    return indices, labels[indices]


def pseudo_labelled(teacher: str | Path, size: int, threshold: float) -> Dataset:
    """The pool sentences the teacher is confident about, with its labels, as a training split
    (``idx`` is ``-1 - position`` in the pool: negative marks a pseudo-label)."""
    texts = unlabelled_pool(size)
    indices, labels = confident_balanced(pool_probabilities(teacher, size), threshold)
    features = Features({"idx": Value("int64"), "text": Value("string"),
                         "label": ClassLabel(names=list(LABEL_NAMES))})
    return Dataset.from_dict({"idx": (-1 - indices).tolist(),
                              "text": [texts[i] for i in indices],
                              "label": labels.tolist()}, features=features)


def threshold_tradeoff(validation_probabilities: np.ndarray, validation_labels: Sequence[int],
                       pool: np.ndarray, thresholds: Sequence[float]) -> pd.DataFrame:
    """Per threshold: the share of validation examples the teacher is that confident about,
    its accuracy on them (what pseudo-labels of that confidence are worth, measured where
    gold labels exist) and how many pool sentences :func:`confident_balanced` keeps."""
    gold = np.asarray(validation_labels)
    confidence = validation_probabilities.max(axis=1)
    correct = validation_probabilities.argmax(axis=1) == gold
    rows = []
    for threshold in thresholds:
        kept = confidence >= threshold
        rows.append({"threshold": threshold, "validation share kept": kept.mean(),
                     "accuracy of kept": correct[kept].mean() if kept.any() else np.nan,
                     "pool sentences kept": len(confident_balanced(pool, threshold)[0])})
    return pd.DataFrame(rows)
