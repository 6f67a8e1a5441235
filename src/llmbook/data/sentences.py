"""Sentences cut from reviews: the unlabelled in-domain text that distillation's transfer set
(chapter 14) and self-training (:mod:`llmbook.adaptation.pseudo_labels`) draw from."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def review_sentences(documents: Sequence[str], size: int, seed: int = 0,
                     min_words: int = 6, max_words: int = 40) -> list[str]:
    """``size`` sentences of ``min_words``-``max_words`` words drawn from ``documents``: the
    unlabelled in-domain text of distillation's transfer set (chapter 14) and self-training.

    Sentences end at ``.``, ``!`` or ``?``; the draw is without replacement and fixed by
    ``seed``.  Raises ``ValueError`` when the documents hold fewer such sentences.
    """
    pool = [sentence for document in documents for sentence in _SENTENCE_END.split(document)
            if min_words <= len(sentence.split()) <= max_words]
    if size > len(pool):
        raise ValueError(f"asked for {size} sentences but the documents hold {len(pool)} of "
                         f"{min_words}-{max_words} words")
    chosen = np.random.default_rng(seed).choice(len(pool), size, replace=False)
    return [pool[i] for i in sorted(chosen)]
