"""Classification metrics and predictions (chapter 9 and every chapter that scores a model).

Metrics are computed with NumPy/scikit-learn: ``evaluate.load`` would fetch metric scripts
from the hub, which does not work offline.  :func:`paired_test` compares two models on the
same examples (McNemar's exact test), so that a gap can be read against its noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from llmbook.models.inference import predict_proba
from llmbook.training.config import IGNORE_INDEX


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict:
    """Accuracy, macro-F1 and the confusion matrix (rows: true label, columns: predicted)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1 or len(labels) == 0:
        raise ValueError(
            f"labels and predictions must be equal-length, non-empty 1-D arrays, got "
            f"{labels.shape} and {predictions.shape}"
        )
    classes = np.union1d(labels, predictions)
    n_classes = max(2, int(classes.max()) + 1)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(
            labels, predictions, labels=list(range(n_classes))
        ).tolist(),
        "n": int(len(labels)),
    }


def evaluate_classifier(model, tokenizer, dataset, max_length: int | None = None,
                        batch_size: int = 64) -> tuple[dict, pd.DataFrame]:
    """Metrics on a labeled dataset and a per-example table (text, label, prediction, score)."""
    texts, labels = list(dataset["text"]), np.asarray(dataset["label"])
    probabilities = predict_proba(model, tokenizer, texts, max_length, batch_size)
    predictions = probabilities.argmax(-1)
    table = pd.DataFrame({
        "text": texts, "label": labels, "prediction": predictions,
        "score": probabilities[np.arange(len(texts)), predictions],
        "correct": predictions == labels,
    })
    return classification_metrics(labels, predictions), table


def classification_eval(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """Default metrics: accuracy and macro-F1 of the arg-max predictions."""
    metrics = classification_metrics(labels, predictions)
    return {k: metrics[k] for k in ("accuracy", "macro_f1")}


def _padded_across_processes(accelerator: Accelerator, predictions: torch.Tensor,
                              labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the same shape on every process, labels with :data:`IGNORE_INDEX` (dropped after
    the gather): token labels may be padded to other lengths, and several processes hold
    parts of a batch that may differ by one example
    (:class:`~llmbook.training.batching.ProcessShardedBatchSampler`), never padding examples."""
    if labels.ndim > 1:
        predictions = accelerator.pad_across_processes(predictions, dim=1)
        labels = accelerator.pad_across_processes(labels, dim=1, pad_index=IGNORE_INDEX)
    if accelerator.num_processes > 1:
        predictions = accelerator.pad_across_processes(predictions, dim=0)
        labels = accelerator.pad_across_processes(labels, dim=0, pad_index=IGNORE_INDEX)
    return predictions, labels


def evaluate_model(model, dataloader, accelerator: Accelerator,
                   metrics_fn: Callable[[np.ndarray, np.ndarray], dict] | None = classification_eval
                   ) -> dict:
    """Loss over ``dataloader`` (batches carry labels) and ``metrics_fn(predictions, labels)``.

    Works for sequence classification (one label per example) and token-level tasks such as
    masked-LM (labels per token, :data:`IGNORE_INDEX` where there is none): predictions are the
    arg-max of the logits at every labelled position, flattened, and the loss is averaged over
    labelled positions.
    """
    model.eval()
    total_loss, total_labels = 0.0, 0
    prediction_parts, label_parts = [], []
    with torch.inference_mode():
        for batch in dataloader:
            outputs = model(**batch)
            count = (batch["labels"] != IGNORE_INDEX).sum()
            total_loss += accelerator.reduce(outputs.loss.detach() * count, "sum").item()
            total_labels += int(accelerator.reduce(count, "sum").item())
            if metrics_fn is not None:
                predictions, labels = _padded_across_processes(
                    accelerator, outputs.logits.argmax(-1), batch["labels"])
                predictions, labels = accelerator.gather_for_metrics((predictions, labels))
                keep = labels != IGNORE_INDEX
                prediction_parts.append(predictions[keep].cpu().numpy())
                label_parts.append(labels[keep].cpu().numpy())
    model.train()
    metrics = {"loss": total_loss / max(total_labels, 1)}
    if metrics_fn is not None:
        metrics.update(metrics_fn(np.concatenate(prediction_parts), np.concatenate(label_parts)))
    return metrics


def paired_test(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """McNemar's exact test of "A and B are equally accurate" on the same examples.

    Only the discordant examples (one model right, the other wrong) carry evidence; under the
    hypothesis each is A's or B's with probability 1/2.  Returns the accuracy ``gap`` (A - B),
    the counts ``only_a`` and ``only_b``, the two-sided ``p_value``, and the ``verdict`` a
    chapter prints: "beyond the noise" when p < 0.05, otherwise "within the noise".
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("need one correctness flag per example from each model, same examples")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p_value = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"gap": float(a.mean() - b.mean()), "only_a": only_a, "only_b": only_b,
            "p_value": float(p_value),
            "verdict": "beyond the noise" if p_value < 0.05 else "within the noise"}


def paired_bootstrap(correct_a, correct_b, *, resamples: int = 2_000, level: float = 0.95,
                     seed: int = 0) -> dict:
    """An interval for the accuracy gap A - B on the same examples, by resampling examples.

    ``correct_a`` and ``correct_b`` are flags per example, or one row of flags per seed
    (``seeds x examples``, chapter 5): each example's gap is then averaged over the seeds
    first, so the interval covers the test set's sampling noise of the seed-averaged gap (the
    seed-to-seed spread is reported beside it, not inside it). Returns the ``gap``, the
    interval's ``low`` and ``high`` ends and a ``verdict``: "beyond the noise" when the
    interval excludes 0, otherwise "within the noise".
    """
    a, b = np.atleast_2d(np.asarray(correct_a, float)), np.atleast_2d(np.asarray(correct_b, float))
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] == 0:
        raise ValueError("need the same examples (and seeds) from each model")
    per_example = a.mean(axis=0) - b.mean(axis=0)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(per_example), size=(resamples, len(per_example)))
    gaps = per_example[picks].mean(axis=1)
    low, high = np.quantile(gaps, [(1 - level) / 2, (1 + level) / 2])
    return {"gap": float(per_example.mean()), "low": float(low), "high": float(high),
            "verdict": "beyond the noise" if low > 0 or high < 0 else "within the noise"}
