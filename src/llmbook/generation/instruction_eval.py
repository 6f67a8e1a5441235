"""Scoring a chat model on the three held-out instruction sets (part "Generative models",
chapter "Instruction tuning with LoRA").

Every score comes from *generated* text, the way a user meets the model:

* :func:`score_sentiment` -- the one-word answer to chapter 11's question, read back with
  :func:`~llmbook.generation.instruction_sets.parse_sentiment`; an answer naming neither label
  counts as wrong;
* :func:`score_writing` -- reviews written on request, half asked positive and half negative
  (sampled, seeded), judged by a classifier (the notebook passes chapter 9's): the share
  labelled as asked, distinct-2, and the longest word run copied from the training snippets;
* :func:`score_support` -- the share of held-out support questions whose answer states the
  right fact (:func:`~llmbook.generation.instruction_sets.carries_fact`), closed book or with
  the entry a :class:`~llmbook.generation.knowledge_base.KnowledgeBase` retrieves in the
  prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from llmbook.generation.causal_lm import distinct_n
from llmbook.generation.instruction_sets import (
    carries_fact,
    longest_copied_ngram,
    parse_sentiment,
    sentiment_conversations,
    support_conversations,
    writing_conversations,
)
from llmbook.generation.sft import generate_answers

#: how writing samples are drawn (the next chapter's nucleus sampling)
WRITING_SAMPLING = {"do_sample": True, "temperature": 0.8, "top_p": 0.9}


def score_sentiment(model, tokenizer, texts: Sequence[str], labels: Sequence[int],
                    batch_size: int = 16) -> dict:
    """Accuracy of the generated answers on ``texts``, the share naming no label, and the
    per-review ``correct`` flags (for paired comparisons)."""
    answers = generate_answers(model, tokenizer, sentiment_conversations(texts, None),
                               max_new_tokens=4, batch_size=batch_size)
    predicted = [parse_sentiment(answer) for answer in answers]
    correct = [p == label for p, label in zip(predicted, labels, strict=True)]
    return {"accuracy": float(np.mean(correct)),
            "unparsed": float(np.mean([p is None for p in predicted])),
            "correct": correct, "answers": answers}


def score_writing(model, tokenizer, per_label: int, judge: Callable[[list[str]], np.ndarray],
                  corpus: Sequence[str], seed: int = 0, max_new_tokens: int = 48,
                  batch_size: int = 16) -> dict:
    """``per_label`` reviews asked negative, then as many asked positive; ``judge(texts)``
    returns predicted labels (0/1).  Reports the share judged as asked, distinct-2 over the
    samples, and the longest run of words copied from ``corpus`` (max and median)."""
    asked = [0] * per_label + [1] * per_label
    samples = generate_answers(model, tokenizer, writing_conversations(None, asked),
                               max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                               **WRITING_SAMPLING)
    judged = np.asarray(judge(samples))
    copied = [longest_copied_ngram(sample, corpus) for sample in samples]
    return {"as_asked": float(np.mean(judged == np.asarray(asked))),
            "distinct_2": distinct_n(samples, 2),
            "longest_copy": int(max(copied)), "median_copy": float(np.median(copied)),
            "samples": samples, "asked": asked}


def score_support(model, tokenizer, knowledge_base=None, max_new_tokens: int = 48,
                  batch_size: int = 16) -> dict:
    """Share of held-out support questions answered with the right fact, and the answers.

    Closed book without ``knowledge_base``; with one, each question's retrieved entry is in
    the system message, and ``retrieved_right`` says where retrieval found the right fact."""
    closed_book, _ = support_conversations(held_out=True, with_answers=False)
    questions = [c[-1]["content"] for c in closed_book]
    entries = None if knowledge_base is None else knowledge_base.retrieve(questions)
    conversations, facts = support_conversations(held_out=True, with_answers=False,
                                                 entries=entries)
    answers = generate_answers(model, tokenizer, conversations, max_new_tokens=max_new_tokens,
                               batch_size=batch_size)
    right = [carries_fact(answer, fact) for answer, fact in zip(answers, facts, strict=True)]
    result = {"accuracy": float(np.mean(right)), "answers": answers, "questions": questions,
              "right": right}
    if entries is not None:
        result["retrieved_right"] = [e is f for e, f in zip(entries, facts, strict=True)]
    return result
