"""The causal language model's loss, mask and measures (part "Generative models", chapters
"Next-token pre-training" and "Generating text and the KV cache").

* :func:`causal_lm_loss` -- L_pre of a GPT-style model, written out: the mean cross-entropy
  of each next token given the ones before it (the logits at position t predict token
  t + 1), equal to the loss a ``...ForCausalLM`` model returns for ``labels=input_ids``;
* the causal mask itself is :func:`llmbook.models.transformer.causal_mask` (chapter 2);
* :func:`perplexity_of_texts` -- exp of that loss over a set of texts, token-weighted;
* :func:`distinct_n` and :func:`repetition_rate` -- how varied generated samples are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

IGNORE_INDEX = -100


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor,
                   ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean next-token cross-entropy: ``-mean_t log p(labels[t+1] | tokens <= t)``.

    ``logits`` is ``(batch, length, vocab)``, ``labels`` ``(batch, length)`` (usually the
    input ids, with ``ignore_index`` at padding).  The last position has no next token and
    the first label is never predicted, so the sum runs over ``length - 1`` shifted pairs,
    skipping those whose target is ``ignore_index``.
    """
    predictions = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    counted = targets != ignore_index
    log_probs = predictions.log_softmax(dim=-1)
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * counted).sum() / counted.sum()


def _right_padded(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in ids)
    input_ids = torch.zeros(len(ids), width, dtype=torch.long)
    attention = torch.zeros(len(ids), width, dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, :len(row)] = torch.tensor(row)
        attention[i, :len(row)] = 1
    return input_ids, attention


@torch.no_grad()
def text_nll(model, tokenizer, texts: Sequence[str], max_length: int = 256,
             batch_size: int = 8) -> tuple[float, int]:
    """``(summed negative log-likelihood in nats, tokens predicted)`` of ``texts``.

    Each text is tokenised on its own (truncated to ``max_length``) and right-padded
    within a batch; a text's first token is context only, so a text of n tokens adds n - 1
    predictions.  Texts of fewer than two tokens add nothing.
    """
    ids = [row for row in tokenizer(list(texts), truncation=True,
                                    max_length=max_length)["input_ids"] if len(row) >= 2]
    total, count = 0.0, 0
    for start in range(0, len(ids), batch_size):
        input_ids, attention = _right_padded(ids[start:start + batch_size])
        logits = model(input_ids=input_ids, attention_mask=attention).logits
        labels = input_ids.masked_fill(attention == 0, IGNORE_INDEX)
        predicted = int((labels[:, 1:] != IGNORE_INDEX).sum())
        total += float(causal_lm_loss(logits, labels)) * predicted
        count += predicted
    return total, count


def perplexity_of_texts(model, tokenizer, texts: Sequence[str], max_length: int = 256,
                        batch_size: int = 8) -> float:
    """exp(mean next-token NLL) of ``texts`` under ``model``, weighted by tokens."""
    total, count = text_nll(model, tokenizer, texts, max_length, batch_size)
    if count == 0:
        raise ValueError("no text has two or more tokens to score")
    return math.exp(total / count)


def _units(sample: str | Sequence) -> list:
    return sample.split() if isinstance(sample, str) else list(sample)


def _ngrams(units: list, n: int) -> list[tuple]:
    return [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]


def distinct_n(samples: Sequence[str | Sequence], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of all samples (Li et al., 2016); 1 = no repeats.

    A sample is a string (split on whitespace) or a sequence of tokens.  0.0 when no
    sample is n units long.
    """
    grams = [gram for sample in samples for gram in _ngrams(_units(sample), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(samples: Sequence[str | Sequence], n: int = 4) -> float:
    """Mean over samples of the share of n-grams that repeat one earlier in the same sample.

    Welleck et al.'s (2019) seq-rep-n: ``1 - unique n-grams / n-grams`` per sample; 0 =
    never loops, near 1 = degenerate repetition.  Samples shorter than n are skipped (0.0
    if all are).
    """
    rates = []
    for sample in samples:
        grams = _ngrams(_units(sample), n)
        if grams:
            rates.append(1 - len(set(grams)) / len(grams))
    return sum(rates) / len(rates) if rates else 0.0
