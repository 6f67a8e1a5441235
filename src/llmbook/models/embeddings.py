"""Sentence embeddings from a frozen encoder (chapter 9's linear probe, chapter 11's zero-shot).

all-MiniLM-L6-v2 was trained as a sentence encoder with *mean pooling*: a text's embedding is
the average of the encoder's last hidden states over its real (non-padding) tokens, then
L2-normalised, so that the dot product of two embeddings is their cosine similarity.  This
module does exactly that with plain ``transformers`` (no ``sentence-transformers`` needed).

Chapter 9 fits a logistic regression on these frozen embeddings (the linear-probe baseline);
chapter 11 ranks texts by cosine similarity to label descriptions (zero-shot classification).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from llmbook.data.tokenization import check_texts, map_by_length
from llmbook.models.loading import load_encoder, load_tokenizer


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average ``hidden`` (batch, tokens, width) over the positions where the mask is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def embed_texts(
    texts: Sequence[str],
    model_name: str | None = "minilm",
    max_length: int = 128,
    batch_size: int = 64,
    normalize: bool = True,
    model: PreTrainedModel | None = None,
    tokenizer=None,
) -> np.ndarray:
    """Mean-pooled embeddings of ``texts``: a float32 array of shape ``(len(texts), hidden)``.

    Texts are truncated to ``max_length`` tokens and encoded ``batch_size`` at a time, in
    batches of similar length (less padding, so faster); rows come back in input order.  With
    ``normalize`` every row has unit L2 norm.  Pass ``model``/``tokenizer`` to reuse ones
    already loaded; otherwise they are loaded from ``model_name``.
    """
    texts = check_texts(texts)
    if max_length <= 0 or batch_size <= 0:
        raise ValueError(
            f"max_length and batch_size must be positive, got {max_length} and {batch_size}"
        )
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_name)
    model = model if model is not None else load_encoder(model_name)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device

    def encode(batch_texts: list[str]) -> np.ndarray:
        batch = tokenizer(batch_texts, padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(device)
        pooled = mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float().cpu().numpy()

    try:
        with torch.inference_mode():
            return map_by_length(texts, batch_size, encode)
    finally:
        model.train(was_training)
