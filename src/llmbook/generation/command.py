"""``llmbook generate``: continue a prompt with a causal LM (part "Generative models",
chapter "Generating text and the KV cache").

* ``llmbook generate --model smollm2 "Write a haiku about rain."`` -- SmolLM2-135M-Instruct
  from the packaged GGUF file, the prompt wrapped in its chat template;
* ``llmbook generate --model runs/gpt "The movie was" --temperature 0.8 --top-p 0.9
  --seed 1 --stream`` -- a model directory (``config.json``, weights and tokenizer).

``--temperature 0`` (the default) is greedy decoding; above 0 the next token is sampled,
after ``--top-k`` / ``--top-p`` filtering, from the book's loop
(:func:`llmbook.generation.decoding.stream_tokens`), seeded with ``--seed``.  Bad values end
with a one-line error and exit status 2, never a traceback.  ``--int8`` decodes with the
model's linear layers quantized to int8 (:func:`llmbook.generation.quantized.quantize_for_cpu`;
opt-in: the chapter measures whether it is faster and how much perplexity it costs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmbook.generation.decoding import stream_text
from llmbook.generation.quantized import quantize_for_cpu
from llmbook.models.loading import load_generator

SMOLLM2 = "smollm2"


def _number(kind, test, requirement: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value
    return parse


def _prompt(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the prompt is empty")
    return text


def add_generate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``generate`` on the ``subparsers`` of ``llmbook``'s parser."""
    p = subparsers.add_parser("generate", help="continue a prompt with a causal LM")
    p.add_argument("--model", required=True,
                   help=f"'{SMOLLM2}' (packaged SmolLM2-135M-Instruct) or a model directory")
    p.add_argument("prompt", type=_prompt, help="the text to continue")
    p.add_argument("--max-new-tokens", type=_number(int, lambda v: v >= 1, ">= 1"),
                   default=64)
    p.add_argument("--temperature", type=_number(float, lambda v: v >= 0, ">= 0"),
                   default=0.0, help="0 (default): greedy decoding; > 0: sampling")
    p.add_argument("--top-k", type=_number(int, lambda v: v >= 0, ">= 0"), default=0,
                   help="sample from the k most probable tokens (0: all)")
    p.add_argument("--top-p", type=_number(float, lambda v: 0 < v <= 1, "in (0, 1]"),
                   default=1.0, help="sample from the smallest set with this much mass")
    p.add_argument("--repetition-penalty", type=_number(float, lambda v: v > 0, "> 0"),
                   default=1.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    p.add_argument("--chat", action=argparse.BooleanOptionalAction, default=None,
                   help="wrap the prompt in the tokenizer's chat template "
                        "(default: when the tokenizer has one)")
    p.add_argument("--stream", action="store_true", help="print tokens as they come")
    p.add_argument("--int8", action="store_true",
                   help="int8 dynamic quantization of the linear layers (CPU), except the "
                        "MLP output projections and the output head")
    p.set_defaults(func=run_generate)
    return p


def load_causal_lm(name: str):
    """``(tokenizer, model)``: SmolLM2 for ``'smollm2'``, else from a model directory."""
    if name == SMOLLM2:
        return load_generator()
    directory = Path(name)
    if not (directory / "config.json").is_file():
        raise SystemExit(f"error: {name}: not a model directory (no config.json); "
                         f"give a directory or '{SMOLLM2}'")

    transformers.logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory)
    except (OSError, ValueError, KeyError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SystemExit(f"error: {name}: cannot load a causal LM ({reason})") from None
    return tokenizer, model.eval()


def context_length(config) -> int | None:
    """Positions the model can attend over (``max_position_embeddings`` or ``n_positions``)."""
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions",
                                                                        None)


def encode_prompt(tokenizer, model, prompt: str, max_new_tokens: int, chat: bool | None):
    """The prompt's ids, ``(1, length)``; ``SystemExit`` when they and the new tokens do not
    fit in the model's context."""
    if chat is None:
        chat = bool(getattr(tokenizer, "chat_template", None))
    if chat:
        messages = [{"role": "user", "content": prompt}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                               tokenize=False)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=not chat).input_ids
    limit = context_length(model.config)
    if limit is not None and ids.shape[1] + max_new_tokens > limit:
        what = ("longer than" if ids.shape[1] >= limit else
                f"with --max-new-tokens {max_new_tokens}, more than")
        raise SystemExit(f"error: the prompt has {ids.shape[1]} tokens, {what} the "
                         f"model's context of {limit} tokens")
    return ids


def run_generate(args) -> int:
    """Print the continuation of ``args.prompt`` (as it comes with ``--stream``)."""
    tokenizer, model = load_causal_lm(args.model)
    if args.int8:
        model = quantize_for_cpu(model)
    ids = encode_prompt(tokenizer, model, args.prompt, args.max_new_tokens, args.chat)
    eos = model.generation_config.eos_token_id
    pieces = stream_text(model, tokenizer, ids, args.max_new_tokens,
                         do_sample=args.temperature > 0, temperature=args.temperature or 1.0,
                         top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                         repetition_penalty=args.repetition_penalty,
                         eos_token_id=eos if eos is not None else tokenizer.eos_token_id)
    if not args.stream:
        pieces = ["".join(pieces)]
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
