"""Instruction tuning: chat-formatted examples whose loss is the answer's alone (part
"Generative models", chapter "Instruction tuning with LoRA").

An instruction example is a conversation -- optional system message, the user's turn, the
assistant's answer -- written with the model's chat template.  Supervised fine-tuning (SFT)
trains the model to produce the answer given the rest, so only the answer's tokens carry a
loss; the template's tokens, the system message and the user's turn are labelled ``-100``:

* :func:`sft_features` -- ``input_ids`` and ``labels`` of one conversation: the prompt is the
  template up to and including the assistant's header (``add_generation_prompt=True``), the
  answer is the assistant's text plus the end-of-turn token (so the model learns to stop);
* :func:`tokenize_for_sft` -- the same over a dataset of ``messages``, dropping (and counting)
  conversations longer than ``max_length``;
* :class:`SftCollator` -- right-pads ``input_ids`` and ``labels`` for the book's loop;
* :func:`loss_mask_table` -- one row per token: what the model reads and whether it learns it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from datasets import Dataset

from llmbook.generation.causal_lm import IGNORE_INDEX


def end_of_turn(tokenizer) -> str:
    """The token that closes an assistant turn (``<|im_end|>`` in SmolLM2's template)."""
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has no end-of-sequence token to close a turn with")
    return tokenizer.eos_token


def chat_prompt(tokenizer, messages: Sequence[dict]) -> str:
    """The chat-template text of ``messages`` followed by the assistant's header: what the
    model reads before it answers."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template")
    return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True,
                                         tokenize=False)


def sft_features(tokenizer, messages: Sequence[dict], max_length: int) -> dict | None:
    """``input_ids``, ``attention_mask`` and ``labels`` of one conversation whose last message
    is the assistant's answer; ``labels`` are ``-100`` except on the answer and its
    end-of-turn token.  ``None`` when it does not fit in ``max_length`` tokens."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's answer")
    prompt = tokenizer(chat_prompt(tokenizer, messages[:-1]), add_special_tokens=False).input_ids
    answer = tokenizer(messages[-1]["content"] + end_of_turn(tokenizer),
                       add_special_tokens=False).input_ids
    if len(prompt) + len(answer) > max_length:
        return None
    return {"input_ids": prompt + answer, "attention_mask": [1] * (len(prompt) + len(answer)),
            "labels": [IGNORE_INDEX] * len(prompt) + answer}


def tokenize_for_sft(dataset: Dataset, tokenizer, max_length: int) -> tuple[Dataset, int]:
    """``(tokenized dataset, conversations dropped for length)`` for a dataset with a
    ``messages`` column."""
    rows = [sft_features(tokenizer, messages, max_length) for messages in dataset["messages"]]
    kept = [row for row in rows if row is not None]
    if not kept:
        raise ValueError(f"no conversation fits in {max_length} tokens")
    return Dataset.from_list(kept), len(rows) - len(kept)


class SftCollator:
    """Right-pads a batch of :func:`sft_features` rows (``labels`` with ``-100``)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict]) -> dict:
        width = max(len(e["input_ids"]) for e in examples)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([list(e[key]) + [value] * (width - len(e[key]))
                                 for e in examples])

        return {"input_ids": pad("input_ids", self.pad_token_id),
                "attention_mask": pad("attention_mask", 0), "labels": pad("labels", IGNORE_INDEX)}


def loss_mask_table(tokenizer, features: dict) -> pd.DataFrame:
    """One row per token of one example: the token and whether its label is learned."""
    tokens = tokenizer.convert_ids_to_tokens(features["input_ids"])
    return pd.DataFrame({"token": tokens,
                         "learned": [label != IGNORE_INDEX for label in features["labels"]]})
