"""Tokenizing datasets and measuring token lengths (chapter 1, and every training chapter)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasets import Dataset


def token_lengths(texts: Sequence[str], tokenizer, batch_size: int = 1_000) -> np.ndarray:
    """Number of tokens of each text *including* ``[CLS]``/``[SEP]``, without truncation."""
    lengths: list[int] = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        encoded = tokenizer(batch, add_special_tokens=True, truncation=False, verbose=False)
        lengths.extend(len(ids) for ids in encoded["input_ids"])
    return np.asarray(lengths, dtype=np.int64)


def truncation_rate(lengths: np.ndarray, max_length: int) -> float:
    """Fraction of texts longer than ``max_length`` tokens, i.e. cut by truncation."""
    if len(lengths) == 0:
        raise ValueError("truncation_rate needs at least one length")
    return float(np.mean(np.asarray(lengths) > max_length))


def tokenize_dataset(dataset: Dataset, tokenizer, max_length: int) -> Dataset:
    """Add ``input_ids``/``attention_mask`` (truncated to ``max_length``, *not* padded).

    Padding is left to the collator so each batch is only as long as its longest text
    (dynamic padding).  The ``text`` and ``idx`` columns are dropped; ``label`` is kept.
    """
    if max_length < 2:
        raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")

    def encode(batch):
        return tokenizer(
            batch["text"], truncation=True, max_length=max_length, return_token_type_ids=False
        )

    drop = [c for c in dataset.column_names if c in ("text", "idx")]
    return dataset.map(encode, batched=True, remove_columns=drop)
