"""Decoding methods side by side (part "Generative models", chapter "Generating text and the
KV cache").

Each method is a dictionary of decoding settings (:data:`DECODING_METHODS`).  Every method
continues the same prompts -- the first tokens of held-out reviews, equal in length so the
whole set is one batch (:func:`review_prompts`) -- and its samples are measured three ways
(:func:`sample_metrics`):

* **distinct-2** -- distinct word bigrams over all bigrams of the continuations (diversity);
* **repetition rate** -- the share of a continuation's 4-grams that repeat an earlier one
  (degeneration);
* **perplexity under the other model** -- how probable the prompt plus continuation is as
  *text* to an independent scorer (quality as another model sees it; the two models'
  tokenizers differ, so only text passes between them).

Beam search runs ``model.generate(num_beams=...)``; every other method runs the book's loop
(:func:`llmbook.generation.decoding.generate_tokens`), which equals ``generate`` for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from llmbook.generation.causal_lm import distinct_n, perplexity_of_texts, repetition_rate
from llmbook.generation.decoding import generate_tokens

#: the chapter's decoding methods: name -> settings of the decoding loop (or ``generate``)
DECODING_METHODS: dict[str, dict] = {
    "greedy": {},
    "beam search (4 beams)": {"num_beams": 4},
    "temperature 0.7": {"do_sample": True, "temperature": 0.7},
    "top-k 50": {"do_sample": True, "top_k": 50},
    "top-p 0.9": {"do_sample": True, "top_p": 0.9},
    "greedy + repetition penalty 1.3": {"repetition_penalty": 1.3},
}


def temperature_methods(temperatures: Sequence[float]) -> dict[str, dict]:
    """Pure sampling at each temperature, as methods for :func:`compare_decoding`."""
    return {f"T={t:g}": {"do_sample": True, "temperature": t} for t in temperatures}


def review_prompts(tokenizer, texts: Sequence[str], count: int, length: int = 8,
                   start_id: int | None = None) -> torch.Tensor:
    """``(count, length)`` ids: the first tokens of the first ``count`` texts long enough.

    ``start_id`` (e.g. ``<|endoftext|>`` for a model trained with it in front of every
    review) is put first and counts towards ``length``.  Raises ``ValueError`` when fewer
    than ``count`` texts have enough tokens.
    """
    keep = length - (start_id is not None)
    prefix = [] if start_id is None else [start_id]
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) >= keep:
            rows.append(prefix + ids[:keep])
        if len(rows) == count:
            return torch.tensor(rows)
    raise ValueError(f"only {len(rows)} of the texts have {keep} tokens; {count} needed")


def context_size(model) -> int:
    """Positions the model attends over: what it can generate up to, or score at once."""
    return getattr(model.config, "n_positions", None) or model.config.max_position_embeddings


def _eos(model, tokenizer):
    eos = model.generation_config.eos_token_id
    return eos if eos is not None else tokenizer.eos_token_id


def generate_samples(model, tokenizer, prompt_ids: torch.Tensor, new_tokens: int,
                     seed: int = 0, **settings) -> list[str]:
    """The continuations (text, prompt excluded) of every prompt under ``settings``.

    ``num_beams`` in ``settings`` means beam search with ``model.generate``; otherwise the
    book's loop runs, sampling (if asked) from one generator seeded with ``seed``.  No
    continuation goes past the model's context.
    """
    new_tokens = min(new_tokens, context_size(model) - prompt_ids.shape[1])
    eos = _eos(model, tokenizer)
    if settings.get("num_beams", 1) > 1:
        pad = model.generation_config.pad_token_id
        out = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                             max_new_tokens=new_tokens, do_sample=False, eos_token_id=eos,
                             pad_token_id=pad if pad is not None else eos, **settings)
    else:
        out = generate_tokens(model, prompt_ids, new_tokens, seed=seed, eos_token_id=eos,
                              **settings)
    return tokenizer.batch_decode(out[:, prompt_ids.shape[1]:], skip_special_tokens=True)


def prompt_texts(tokenizer, prompt_ids: torch.Tensor) -> list[str]:
    """The prompts as text (special tokens dropped), to put in front of the continuations."""
    return tokenizer.batch_decode(prompt_ids, skip_special_tokens=True)


def sample_metrics(continuations: Sequence[str], prompts: Sequence[str], scorer,
                   scorer_tokenizer, max_length: int = 256) -> dict:
    """distinct-2 and repetition rate (4-grams) of the continuations, and the perplexity of
    prompt + continuation under ``scorer``."""
    texts = [p + c for p, c in zip(prompts, continuations, strict=True)]
    return {"distinct-2": distinct_n(continuations, 2),
            "repetition rate": repetition_rate(continuations, 4),
            "perplexity (other model)": perplexity_of_texts(scorer, scorer_tokenizer, texts,
                                                            max_length=max_length),
            "words per sample": sum(len(c.split()) for c in continuations)
            / max(1, len(continuations))}


def compare_decoding(model, tokenizer, prompt_ids: torch.Tensor, scorer, scorer_tokenizer,
                     methods: Mapping[str, dict], new_tokens: int, seed: int = 0
                     ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """One row of :func:`sample_metrics` per method, and the samples (prompt + continuation)
    of every method."""
    prompts = prompt_texts(tokenizer, prompt_ids)
    rows, samples = {}, {}
    for name, settings in methods.items():
        continuations = generate_samples(model, tokenizer, prompt_ids, new_tokens, seed,
                                         **settings)
        rows[name] = sample_metrics(continuations, prompts, scorer, scorer_tokenizer,
                                    max_length=min(256, context_size(scorer)))
        samples[name] = [p + c for p, c in zip(prompts, continuations, strict=True)]
    return pd.DataFrame(rows).T.rename_axis("method"), samples
