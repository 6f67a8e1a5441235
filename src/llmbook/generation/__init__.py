"""Part "Generative models": decoder-only language models, from pre-training to generation.

Chapters of the part:

* **Next-token pre-training** -- the causal-LM loss written out (:mod:`.causal_lm`:
  :func:`causal_lm_loss`, the causal mask, perplexity of texts under a model), a byte-level
  BPE vocabulary (:mod:`.bpe`) and a small GPT-2 trained from scratch on chapter 4's IMDb
  pool with the book's loop (:mod:`.pretraining`, imported on its own: it needs the data),
  and masked-LM against causal-LM on the same reviews (:mod:`.objectives`, likewise).
* **Generating text and the KV cache** -- logits processors and the book's own decoding loop
  that reproduces ``model.generate`` token for token (:mod:`.decoding`), sample-quality
  metrics (distinct-n, repetition rate in :mod:`.causal_lm`), the KV cache's memory and
  speed (:mod:`.kv_cache`), decoding methods side by side (:mod:`.samples`), int8
  quantization for CPU decoding (:mod:`.quantized`) and the ``llmbook generate`` command
  (:mod:`.command`).
* **Instruction tuning with LoRA** -- the chat template and the answer-only loss
  (:mod:`.instruction`), three instruction sets from the book's data and a synthetic support
  desk (:mod:`.instruction_sets`), SmolLM2 tuned with LoRA or fully (:mod:`.sft`) and scored
  from generated text (:mod:`.instruction_eval`), closed book or with the support desk's
  knowledge base retrieved into the prompt (:mod:`.knowledge_base`); the last three are
  imported on their own, as they need the data or the encoder.
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
    cache_memory,
    cache_timing,
    kv_cache_bytes,
    measured_cache_bytes,
    step_seconds,
    time_per_token,
    tokens_per_second,
)
from llmbook.generation.quantized import (
    KEEP_FP32,
    compare_precisions,
    count_quantized,
    int8_pays_off,
    linear_input_outliers,
    quantize_for_cpu,
)
from llmbook.generation.samples import (
    DECODING_METHODS,
    compare_decoding,
    generate_samples,
    review_prompts,
    sample_metrics,
    temperature_methods,
)
from llmbook.models.transformer import causal_mask  # chapter 2's, re-exported

__all__ = [
    "DECODING_METHODS",
    "KEEP_FP32",
    "apply_repetition_penalty",
    "apply_temperature",
    "apply_top_k",
    "apply_top_p",
    "cache_memory",
    "cache_timing",
    "causal_lm_loss",
    "causal_mask",
    "compare_decoding",
    "compare_precisions",
    "count_quantized",
    "distinct_n",
    "generate_samples",
    "generate_tokens",
    "int8_pays_off",
    "kv_cache_bytes",
    "linear_input_outliers",
    "measured_cache_bytes",
    "perplexity_of_texts",
    "process_logits",
    "quantize_for_cpu",
    "repetition_rate",
    "review_prompts",
    "sample_metrics",
    "step_seconds",
    "stream_text",
    "stream_tokens",
    "temperature_methods",
    "text_nll",
    "time_per_token",
    "tokens_per_second",
    "train_byte_level_bpe",
]
