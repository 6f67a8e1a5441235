"""Tokenizing datasets and measuring token lengths (chapter 1, and every training chapter)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from datasets import Dataset


def check_texts(texts) -> list[str]:
    """``texts`` as a non-empty list of strings, else a ``TypeError``/``ValueError`` saying why."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string; wrap it: [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("need at least one text, got an empty sequence")
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"every text must be a str, got {len(bad)} of type {bad[0]}")
    return texts


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


def map_by_length(texts: Sequence[str], batch_size: int,
                  encode_batch: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Apply ``encode_batch`` to batches of texts of similar length; rows in input order.

    Sorting by length before batching keeps padding (and so wasted compute) small at
    inference time; the result is put back in the order of ``texts``.
    """
    order = np.argsort([len(text) for text in texts], kind="stable")
    parts = [
        encode_batch([texts[i] for i in order[start : start + batch_size]])
        for start in range(0, len(texts), batch_size)
    ]
    stacked = np.concatenate(parts, axis=0)
    result = np.empty_like(stacked)
    result[order] = stacked
    return result
