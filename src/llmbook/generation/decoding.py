"""The book's decoding loop, written from scratch (part "Generative models", chapter
"Generating text and the KV cache").

A causal language model gives, at every step, one vector of logits over the vocabulary for
the next token.  Decoding turns it into a token:

1. *logits processors* reshape the scores -- :func:`apply_repetition_penalty`, then (when
   sampling) :func:`apply_temperature`, :func:`apply_top_k`, :func:`apply_top_p`, the order
   ``transformers`` uses (:func:`process_logits`);
2. the token is the argmax (greedy) or a draw from the softmax (sampling);
3. it is appended and fed back.  With the *KV cache* (the ``cache`` argument of
   transformers 5.x models, ``past_key_values`` before) only the new token goes through
   the model; the keys and values of the earlier ones are reused.

:func:`stream_tokens` is the loop (one token per step, as it is chosen), :func:`generate_tokens`
collects it into ``model.generate``'s output -- the same tokens, for greedy decoding and for
seeded sampling (``torch.manual_seed(s)`` before ``generate`` or ``seed=s`` here) -- and
:func:`stream_text` turns it into printable text pieces (``llmbook generate --stream``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Sequence

import torch

# ----------------------------------------------------------------------------------------
# logits processors: each takes scores of shape (batch, vocab) and returns new scores


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by ``temperature``: < 1 sharpens the distribution, > 1 flattens it."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits / temperature


def apply_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the ``k`` largest logits (ties with the k-th included), set the rest to -inf.

    ``k`` of ``None`` or 0 keeps everything.
    """
    if not k:
        return logits
    if k < 0:
        raise ValueError(f"top_k must be >= 0, got {k}")
    kth_largest = torch.topk(logits, min(k, logits.size(-1))).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def apply_top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of top tokens whose probability reaches ``p``.

    Sorted from the least probable up, a token is dropped while the cumulative probability
    up to and including it is at most ``1 - p`` (the most probable token is always kept).
    This is the arithmetic of ``transformers``' ``TopPLogitsWarper``, so ties at the
    boundary fall the same way.  ``p`` of ``None`` or 1 keeps everything.
    """
    if p is None or p == 1.0:
        return logits
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - p)
    drop_sorted[..., -1] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def apply_repetition_penalty(logits: torch.Tensor, input_ids: torch.Tensor,
                             penalty: float) -> torch.Tensor:
    """Make every token already in ``input_ids`` less likely (CTRL, Keskar et al., 2019).

    A seen token's logit is divided by ``penalty`` when positive and multiplied by it when
    negative, so ``penalty`` > 1 always lowers it.  1 changes nothing.
    """
    if penalty == 1.0:
        return logits
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {penalty}")
    seen = torch.gather(logits, 1, input_ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, input_ids, seen)


def process_logits(logits: torch.Tensor, input_ids: torch.Tensor, *, do_sample: bool,
                   temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, repetition_penalty: float = 1.0
                   ) -> torch.Tensor:
    """All processors in ``transformers``' order; temperature/top-k/top-p only when sampling."""
    scores = apply_repetition_penalty(logits, input_ids, repetition_penalty)
    if do_sample:
        if temperature != 1.0:
            scores = apply_temperature(scores, temperature)
        scores = apply_top_p(apply_top_k(scores, top_k), top_p)
    return scores


def check_settings(max_new_tokens: int, temperature: float, top_k: int | None,
                   top_p: float | None, repetition_penalty: float) -> None:
    """Raise ``ValueError`` with a one-line message for a setting no decoder accepts."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if not repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")


# ----------------------------------------------------------------------------------------
# the loop


def _eos_ids(eos_token_id: int | Sequence[int] | None) -> torch.Tensor | None:
    if eos_token_id is None:
        return None
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def cache_argument(model) -> str:
    """The forward argument that carries the KV cache: ``cache`` (transformers 5.x) or
    ``past_key_values`` (older releases)."""
    return "cache" if _accepts(model, "cache") else "past_key_values"


def cache_of(outputs):
    """The KV cache a forward pass returned (``outputs.cache`` or ``.past_key_values``)."""
    return outputs["cache"] if "cache" in outputs else outputs["past_key_values"]


def _next_logits(model, sequence: torch.Tensor, fresh: torch.Tensor, past, use_cache: bool,
                 extra: dict):
    """Logits (float32) for the next token and the updated cache (``None`` without one).

    With the cache only the ``fresh`` tokens (the prompt, then the last token) go through
    the model; without it the whole ``sequence`` does, every step.
    """
    if use_cache:
        out = model(input_ids=fresh, use_cache=True, **{extra["cache"]: past},
                    **extra["keep_last"])
        return out.logits[:, -1, :].float(), cache_of(out)
    out = model(input_ids=sequence, use_cache=False, **extra["keep_last"])
    return out.logits[:, -1, :].float(), None


def _choose(scores: torch.Tensor, do_sample: bool, generator) -> torch.Tensor:
    if not do_sample:
        return scores.argmax(dim=-1)
    probabilities = scores.softmax(dim=-1)
    return torch.multinomial(probabilities, num_samples=1, generator=generator).squeeze(1)


@torch.no_grad()
def stream_tokens(model, input_ids: torch.Tensor, max_new_tokens: int = 32, *,
                  do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, repetition_penalty: float = 1.0,
                  seed: int | None = None, generator: torch.Generator | None = None,
                  use_cache: bool = True, eos_token_id: int | Sequence[int] | None = None,
                  pad_token_id: int | None = None) -> Iterator[torch.Tensor]:
    """Yield the next token of every sequence (shape ``(batch,)``), one step at a time.

    ``input_ids`` is a ``(batch, length)`` tensor of equal-length (unpadded) prompts.
    Sampling draws from ``generator``, else from a new one seeded with ``seed``, else from
    torch's global generator (so ``torch.manual_seed`` makes it reproducible, as for
    ``generate``).  A sequence that produced ``eos_token_id`` gets ``pad_token_id`` (default:
    the first eos id) from then on; the loop ends when all have finished.
    """
    check_settings(max_new_tokens, temperature, top_k, top_p, repetition_penalty)
    if generator is None and seed is not None:
        generator = torch.Generator(device=input_ids.device).manual_seed(seed)
    eos = _eos_ids(eos_token_id)
    pad = pad_token_id if pad_token_id is not None or eos is None else int(eos[0])
    extra = {"cache": cache_argument(model),  # only the last position's logits are needed:
             "keep_last": {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}}
    sequence, fresh, past = input_ids, input_ids, None
    unfinished = torch.ones(input_ids.size(0), dtype=torch.bool, device=input_ids.device)
    for _ in range(max_new_tokens):
        logits, past = _next_logits(model, sequence, fresh, past, use_cache, extra)
        scores = process_logits(logits, sequence, do_sample=do_sample, temperature=temperature,
                                top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
        token = _choose(scores, do_sample, generator)
        if eos is not None:
            token = torch.where(unfinished, token, torch.full_like(token, pad))
            unfinished &= ~torch.isin(token, eos.to(token.device))
        yield token
        fresh = token[:, None]
        sequence = torch.cat([sequence, fresh], dim=1)
        if not unfinished.any():
            return


def _accepts(model, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def generate_tokens(model, input_ids: torch.Tensor, max_new_tokens: int = 32, *,
                    do_sample: bool = False, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None,
                    repetition_penalty: float = 1.0, seed: int | None = None,
                    generator: torch.Generator | None = None, use_cache: bool = True,
                    eos_token_id: int | Sequence[int] | None = None,
                    pad_token_id: int | None = None) -> torch.Tensor:
    """Prompt plus generated tokens, ``(batch, length + new)``, like ``model.generate``.

    The arguments are :func:`stream_tokens`'s; with the same settings (and, for sampling,
    the same seed) the result equals ``model.generate(input_ids, ...)`` token for token.
    """
    steps = stream_tokens(model, input_ids, max_new_tokens, do_sample=do_sample,
                          temperature=temperature, top_k=top_k, top_p=top_p,
                          repetition_penalty=repetition_penalty, seed=seed,
                          generator=generator, use_cache=use_cache,
                          eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    return torch.cat([input_ids, *(token[:, None] for token in steps)], dim=1)


def text_pieces(tokenizer, tokens: Iterable[torch.Tensor]) -> Iterator[str]:
    """Turn a stream of next tokens (batch of one) into text pieces, as soon as printable.

    The ids so far are decoded as a whole at every step and only the new suffix is yielded,
    held back while it ends in an incomplete UTF-8 character (byte-level BPE splits some
    characters over several tokens).  The pieces join to the decoded continuation.
    """
    generated: list[int] = []
    shown = ""
    for token in tokens:
        generated.append(int(token[0]))
        text = tokenizer.decode(generated, skip_special_tokens=True)
        if text.endswith("\ufffd") or len(text) <= len(shown):
            continue
        piece, shown = text[len(shown):], text
        yield piece
    text = tokenizer.decode(generated, skip_special_tokens=True)
    if len(text) > len(shown):
        yield text[len(shown):]


def stream_text(model, tokenizer, prompt: str | torch.Tensor, max_new_tokens: int = 32,
                **settings) -> Iterator[str]:
    """Yield the continuation of ``prompt`` (a string or its ``(1, length)`` ids) as text.

    ``settings`` go to :func:`stream_tokens`; ``eos_token_id`` defaults to the tokenizer's.
    See :func:`text_pieces` for when a piece comes out.
    """
    settings.setdefault("eos_token_id", tokenizer.eos_token_id)
    input_ids = (tokenizer(prompt, return_tensors="pt").input_ids if isinstance(prompt, str)
                 else prompt)
    yield from text_pieces(tokenizer, stream_tokens(model, input_ids, max_new_tokens,
                                                    **settings))
