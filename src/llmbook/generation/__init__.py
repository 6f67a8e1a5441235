"""Part "Generative models": decoder-only language models, from pre-training to generation.

Chapters of the part:

* **Next-token pre-training** -- the causal-LM loss written out (:mod:`.causal_lm`:
  :func:`causal_lm_loss`, the causal mask, perplexity of texts under a model), a byte-level
  BPE vocabulary (:mod:`.bpe`) and a small GPT-2 trained from scratch on chapter 3's IMDb
  pool with the book's loop (:mod:`.pretraining`, imported on its own: it needs the data),
  and masked-LM against causal-LM on the same reviews (:mod:`.objectives`, likewise).
* **Generating text and the KV cache** -- logits processors and the book's own decoding loop
  that reproduces ``model.generate`` token for token (:mod:`.decoding`), sample-quality
  metrics (distinct-n, repetition rate in :mod:`.causal_lm`), the KV cache's memory and
  speed (:mod:`.kv_cache`) and the ``llmbook generate`` command (:mod:`.command`).
"""

from llmbook.generation.bpe import train_byte_level_bpe
from llmbook.generation.causal_lm import (
    causal_lm_loss,
    distinct_n,
    perplexity_of_texts,
    repetition_rate,
    text_nll,
)
from llmbook.generation.decoding import (
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    generate_tokens,
    process_logits,
    stream_text,
    stream_tokens,
)
from llmbook.generation.kv_cache import (
    kv_cache_bytes,
    measured_cache_bytes,
    time_per_token,
    tokens_per_second,
)
from llmbook.models.transformer import causal_mask  # chapter 1b's, re-exported

__all__ = [
    "apply_repetition_penalty",
    "apply_temperature",
    "apply_top_k",
    "apply_top_p",
    "causal_lm_loss",
    "causal_mask",
    "distinct_n",
    "generate_tokens",
    "kv_cache_bytes",
    "measured_cache_bytes",
    "perplexity_of_texts",
    "process_logits",
    "repetition_rate",
    "stream_text",
    "stream_tokens",
    "text_nll",
    "time_per_token",
    "tokens_per_second",
    "train_byte_level_bpe",
]
