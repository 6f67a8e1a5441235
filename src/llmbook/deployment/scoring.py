"""Scoring with any trained classifier directory (chapters 9, 14 and 15; ``llmbook predict`` and
``llmbook evaluate``).

Two kinds of directory hold a classifier: a PyTorch model (or adapter) that ``llmbook
finetune`` or ``llmbook distil`` wrote, loaded by :func:`llmbook.models.load_for_inference`,
and an export that ``llmbook export`` wrote (``model.onnx``, int8 or not, with its sha256
manifest), run in ONNX Runtime by the served API's :class:`Predictor`.  :func:`load_scorer`
takes either and gives one :class:`Scorer`, so predictions and metrics have one format
whichever model answers; any other directory gets a :class:`ModelDirError` saying what is
missing and which command makes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmbook.data.tokenization import map_by_length
from llmbook.deployment.export import ONNX_FILE
from llmbook.deployment.manifest import MANIFEST, ManifestError
from llmbook.deployment.serving.config import StartupError
from llmbook.deployment.serving.predictor import Predictor
from llmbook.models.adapters import is_adapter_dir
from llmbook.models.inference import load_for_inference, predict_proba
from llmbook.training.evaluation import classification_metrics

#: Texts per model call when scoring a file (batched by length, as in training evaluation).
BATCH_SIZE = 64


class ModelDirError(ValueError):
    """A directory that holds neither a PyTorch classifier nor a verified export."""


@dataclass
class Scorer:
    """Class probabilities for texts, from a PyTorch model (``torch``) or an export (``onnx``).

    ``tokenizer`` and ``max_length`` are the model's own: a longer text is cut to
    ``max_length`` tokens before it is scored (:meth:`count_truncated` says how many were).
    """

    model_dir: Path
    backend: str
    labels: list[str]
    predict: Callable[[list[str]], np.ndarray]  # shape (len(texts), len(labels))
    tokenizer: object = None
    max_length: int | None = None

    @property
    def label2id(self) -> dict[str, int]:
        """The model's label names and their class ids (its config's ``id2label``, inverted)."""
        return {name: i for i, name in enumerate(self.labels)}

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than ``max_length`` tokens (special ones included),
        so that the model sees only their beginning."""
        if self.tokenizer is None or self.max_length is None or not texts:
            return 0
        lengths = self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        return sum(len(ids) > self.max_length for ids in lengths)


def model_dir_kind(model_dir: str | Path) -> str:
    """``"export"`` (``model.onnx``), ``"torch"`` (weights or an adapter), or ModelDirError."""
    model_dir = Path(model_dir)
    if (model_dir / ONNX_FILE).is_file():
        return "export"
    if is_adapter_dir(model_dir) or ((model_dir / "config.json").is_file()
                                     and any(model_dir.glob("*.safetensors"))):
        return "torch"
    if not model_dir.is_dir():
        raise ModelDirError(f"{model_dir} does not exist: pass the --out directory of "
                            "`llmbook finetune` or of `llmbook export`")
    missing = [name for name, present in (
        ("config.json", (model_dir / "config.json").is_file()),
        ("model.safetensors", any(model_dir.glob("*.safetensors")))) if not present]
    raise ModelDirError(
        f"{model_dir} is not a model directory: it has no {' and no '.join(missing)} (make one "
        f"with `llmbook finetune --out {model_dir}`) and no {ONNX_FILE} with {MANIFEST} (make "
        f"one with `llmbook export --model <model dir> --out {model_dir}`)")


def load_scorer(model_dir: str | Path, batch_size: int = BATCH_SIZE) -> Scorer:
    """A :class:`Scorer` for a PyTorch model directory or an ``llmbook export`` directory.

    An export is loaded only after its manifest verifies (a missing or failing manifest is a
    :class:`ModelDirError` too).
    """
    model_dir = Path(model_dir)
    if model_dir_kind(model_dir) == "export":
        try:
            predictor = Predictor(model_dir, backend="onnx")
        except (ManifestError, StartupError) as err:
            raise ModelDirError(str(err)) from err

        def predict(texts: list[str]) -> np.ndarray:
            if not texts:
                return np.zeros((0, len(predictor.labels)), dtype=np.float32)
            return map_by_length(list(texts), batch_size, predictor.predict)

        return Scorer(model_dir, "onnx", predictor.labels, predict, predictor.tokenizer,
                      predictor.max_length)
    tokenizer, model = load_for_inference(model_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    max_length = min(tokenizer.model_max_length, 512)  # as predict_proba truncates
    return Scorer(model_dir, "torch", labels,
                  lambda texts: predict_proba(model, tokenizer, texts, max_length, batch_size),
                  tokenizer, max_length)


def predicted_rows(scorer: Scorer, rows: Sequence[dict]) -> Iterator[dict]:
    """Each row, its own fields untouched, with the ``predicted_label`` (a label name of the
    model) and that label's probability ``predicted_score``."""
    probabilities = scorer.predict([row["text"] for row in rows])
    for row, probs in zip(rows, probabilities, strict=True):
        label = int(probs.argmax())
        yield {**row, "predicted_label": scorer.labels[label],
               "predicted_score": float(probs[label])}


def evaluate_rows(scorer: Scorer, rows: Sequence[dict]) -> dict:
    """Accuracy, macro-F1, confusion matrix and ``n`` on rows with ``text`` and a ``label``
    that is a class id of the model (:func:`llmbook.data.rows.read_rows` maps label names
    through ``scorer.label2id``; :func:`llmbook.training.evaluation.classification_metrics`),
    plus the backend used and how many texts were truncated."""
    if not rows:
        raise ValueError("no rows to evaluate")
    texts = [row["text"] for row in rows]
    probabilities = scorer.predict(texts)
    metrics = classification_metrics([row["label"] for row in rows], probabilities.argmax(-1))
    return {"backend": scorer.backend, **metrics,
            "truncated": scorer.count_truncated(texts), "max_length": scorer.max_length}
