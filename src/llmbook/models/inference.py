"""Loading a trained classifier (full model or adapter) and scoring texts with it (chapters 9, 10,
14, 15, 17)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from llmbook.data.tokenization import map_by_length
from llmbook.models.adapters import is_adapter_dir, load_adapted


def load_for_inference(model_dir: str | Path):
    """Tokenizer and classifier (in ``eval()`` mode) from a directory ``llmbook finetune`` wrote.

    Full fine-tuning writes a complete model; PEFT methods an adapter
    (:mod:`llmbook.models.adapters`).
    """
    model_dir = Path(model_dir)
    if is_adapter_dir(model_dir):  # a parameter-efficient run: base model + adapter
        return AutoTokenizer.from_pretrained(model_dir), load_adapted(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(
            f"{model_dir} is not a model directory (no config.json): pass the --out directory "
            "of `llmbook finetune`."
        )
    if not any(model_dir.glob("*.safetensors")):
        raise FileNotFoundError(
            f"{model_dir} has a config.json but no PyTorch weights (*.safetensors): pass the --out "
            "directory of `llmbook finetune` (an `llmbook export` directory is scored by "
            "llmbook.deployment.scoring.load_scorer, as `llmbook predict` does)."
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return tokenizer, model


def predict_proba(model, tokenizer, texts: Sequence[str], max_length: int | None = None,
                  batch_size: int = 64) -> np.ndarray:
    """Class probabilities, shape ``(len(texts), num_labels)``, in the order of ``texts``.

    Texts are batched by length (little padding) and run under ``torch.inference_mode()``.
    """
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
