"""Classification metrics and predictions (chapter 4 and every chapter that scores a model).

Metrics are computed with NumPy/scikit-learn: ``evaluate.load`` would fetch metric scripts
from the hub, which does not work offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from llmbook.tokenization import map_by_length


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


def load_for_inference(model_dir: str | Path):
    """Tokenizer and classifier (in ``eval()`` mode) from a directory ``llmbook finetune`` wrote.

    Full fine-tuning writes a complete model; PEFT methods an adapter (:mod:`llmbook.peft`).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llmbook.peft import is_adapter_dir, load_adapted

    model_dir = Path(model_dir)
    if is_adapter_dir(model_dir):  # a parameter-efficient run: base model + adapter
        return AutoTokenizer.from_pretrained(model_dir), load_adapted(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(
            f"{model_dir} is not a model directory (no config.json): pass the --out directory "
            "of `llmbook finetune`."
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return tokenizer, model


def predict_proba(model, tokenizer, texts: Sequence[str], max_length: int | None = None,
                  batch_size: int = 64) -> np.ndarray:
    """Class probabilities, shape ``(len(texts), num_labels)``, in the order of ``texts``.

    Texts are batched by length (little padding) and run under ``torch.inference_mode()``.
    """
    import torch

    if len(texts) == 0:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    max_length = max_length or min(tokenizer.model_max_length, 512)
    device = next(model.parameters()).device
    model.eval()

    def encode(batch_texts: list[str]) -> np.ndarray:
        batch = tokenizer(batch_texts, truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt").to(device)
        return torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy()

    with torch.inference_mode():
        return map_by_length(list(texts), batch_size, encode)


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
