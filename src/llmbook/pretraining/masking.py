"""Masked language modelling (chapters 3, 4 and 5): masking, fixed-mask evaluation, perplexity.

BERT's pre-training objective {Devlin et al. 2019}: select 15% of the (non-special) tokens;
of those, replace 80% by ``[MASK]``, 10% by a random token and leave 10% unchanged; the model
must predict the original token at every selected position, and only there (every other
position has label ``-100`` and carries no loss).  *Whole-word* masking selects words instead
of WordPiece tokens, so ``un ##believ ##able`` is masked all at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import BertForMaskedLM
from transformers.modeling_outputs import MaskedLMOutput

from llmbook.training.config import IGNORE_INDEX

MASK_PROBABILITY = 0.15

#: Of the selected positions: share replaced by [MASK], by a random token (rest unchanged).
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1


def special_tokens_mask(input_ids: torch.Tensor, tokenizer) -> torch.Tensor:
    """True at [CLS], [SEP], [PAD] and every other special token."""
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), device=input_ids.device)
    return torch.isin(input_ids, special)


def select_positions(input_ids: torch.Tensor, tokenizer, probability: float = MASK_PROBABILITY,
                     generator: torch.Generator | None = None,
                     word_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask of the positions to predict; never a special token.

    Token-level by default.  With ``word_ids`` (same shape, ``-1`` for special tokens) whole
    words are selected with ``probability`` and all their pieces with them.
    """
    if not 0 < probability < 1:
        raise ValueError(f"masking probability must be in (0, 1), got {probability}")
    maskable = ~special_tokens_mask(input_ids, tokenizer)
    if word_ids is None:
        draws = torch.rand(input_ids.shape, generator=generator)
        return (draws.to(input_ids.device) < probability) & maskable
    word_ids = word_ids.to(input_ids.device)
    n_words = int(word_ids.max().item()) + 1 if word_ids.numel() else 0
    chosen_words = torch.rand((input_ids.shape[0], max(n_words, 1)), generator=generator)
    chosen_words = chosen_words.to(input_ids.device) < probability
    safe_ids = word_ids.clamp(min=0)
    return torch.gather(chosen_words, 1, safe_ids) & (word_ids >= 0) & maskable


def mask_tokens(input_ids: torch.Tensor, tokenizer, probability: float = MASK_PROBABILITY,
                generator: torch.Generator | None = None,
                word_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(masked inputs, labels)``: BERT's 80/10/10 corruption of the selected positions."""
    selected = select_positions(input_ids, tokenizer, probability, generator, word_ids)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    roll = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    to_mask = selected & (roll < MASK_SHARE)
    to_random = selected & (roll >= MASK_SHARE) & (roll < MASK_SHARE + RANDOM_SHARE)
    random_tokens = torch.randint(len(tokenizer), input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[to_mask] = tokenizer.mask_token_id
    masked[to_random] = random_tokens.to(input_ids.device)[to_random]
    return masked, labels


def tokenize_for_mlm(dataset: Dataset, tokenizer, max_length: int) -> Dataset:
    """``input_ids``, ``attention_mask`` and ``word_ids`` (``-1`` for special tokens)."""

    def encode(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_length,
                            return_token_type_ids=False)
        encoded["word_ids"] = [
            [-1 if w is None else w for w in encoded.word_ids(i)]
            for i in range(len(batch["text"]))
        ]
        return encoded

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names)


class MaskingCollator:
    """Pads a batch and masks it afresh: the training collator for masked-LM.

    With ``whole_word`` the features must carry ``word_ids`` (see :func:`tokenize_for_mlm`).
    Features that already carry ``labels`` (a fixed-mask evaluation set) are only padded.
    """

    def __init__(self, tokenizer, probability: float = MASK_PROBABILITY,
                 whole_word: bool = False, seed: int | None = None):
        self.tokenizer = tokenizer
        self.probability = probability
        self.whole_word = whole_word
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, features: Sequence[dict]) -> dict:
        longest = max(len(f["input_ids"]) for f in features)

        def pad(key, value):
            return torch.tensor([list(f[key]) + [value] * (longest - len(f[key]))
                                 for f in features])

        batch = {"input_ids": pad("input_ids", self.tokenizer.pad_token_id),
                 "attention_mask": pad("attention_mask", 0)}
        if "labels" in features[0]:
            batch["labels"] = pad("labels", IGNORE_INDEX)
            return batch
        word_ids = pad("word_ids", -1) if self.whole_word else None
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"], self.tokenizer, self.probability, self.generator, word_ids
        )
        return batch


def fixed_mask_dataset(dataset: Dataset, tokenizer, probability: float = MASK_PROBABILITY,
                       seed: int = 0, whole_word: bool = False) -> Dataset:
    """A tokenized evaluation set masked once with a fixed seed: identical masks every run,
    so perplexity and masked-token accuracy are comparable across models and runs."""
    generator = torch.Generator().manual_seed(seed)
    inputs, labels = [], []
    for row in dataset:
        ids = torch.tensor([row["input_ids"]])
        words = torch.tensor([row["word_ids"]]) if whole_word else None
        masked, target = mask_tokens(ids, tokenizer, probability, generator, words)
        inputs.append(masked[0].tolist())
        labels.append(target[0].tolist())
    return Dataset.from_dict({"input_ids": inputs,
                              "attention_mask": list(dataset["attention_mask"]),
                              "labels": labels})


class BertForSparseMaskedLM(BertForMaskedLM):
    """``BertForMaskedLM`` whose *training* forward decodes only the positions with a label.

    The output layer maps every position to the whole vocabulary, yet only the ~15% selected
    positions carry a loss: decoding just those gives the same loss (mean cross-entropy over
    labelled positions) and gradients for a fraction of the work -- the decoder is about half
    the cost of a MiniLM step and most of a small scratch model's.  In ``eval()`` mode, or
    without labels, it is exactly ``BertForMaskedLM`` (logits at every position).  The
    weights and the saved checkpoint are those of ``BertForMaskedLM``.
    """

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        if labels is None or not self.training:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   labels=labels, **kwargs)
        hidden = self.bert(input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        selected = labels != IGNORE_INDEX
        logits = self.cls(hidden[selected])
        return MaskedLMOutput(loss=torch.nn.functional.cross_entropy(logits, labels[selected]),
                              logits=logits)

    def save_pretrained(self, *args, **kwargs):
        """Saved as a plain ``BertForMaskedLM`` (the config names that architecture)."""
        self.__class__ = BertForMaskedLM
        try:
            return BertForMaskedLM.save_pretrained(self, *args, **kwargs)
        finally:
            self.__class__ = BertForSparseMaskedLM


def sparse_decoding(model):
    """``model`` switched to :class:`BertForSparseMaskedLM` when it is a ``BertForMaskedLM``
    (same object, same weights); any other masked-LM is returned unchanged."""
    if type(model) is BertForMaskedLM:
        model.__class__ = BertForSparseMaskedLM
    return model


def masked_token_accuracy(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """Share of masked positions whose original token is the top prediction (a ``metrics_fn``
    for :func:`llmbook.training.loop.train`)."""
    return {"accuracy": float(np.mean(np.asarray(predictions) == np.asarray(labels)))}


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy of the masked tokens): the effective number of equally likely
    choices the model hesitates between at a masked position."""
    return float(math.exp(mean_loss))


def masking_table(tokenizer, input_ids: torch.Tensor, masked: torch.Tensor,
                  labels: torch.Tensor):
    """One row per selected position of one sequence: the token, what the model sees there
    (``[MASK]``, a random token, or the token kept) and the label it must predict."""
    rows = []
    for position in torch.nonzero(labels != IGNORE_INDEX).flatten().tolist():
        original, shown = int(input_ids[position]), int(masked[position])
        if shown == tokenizer.mask_token_id:
            action = "replaced by [MASK]"
        elif shown == original:
            action = "kept"
        else:
            action = "replaced by a random token"
        rows.append({"position": position,
                     "token": tokenizer.convert_ids_to_tokens(original),
                     "model sees": tokenizer.convert_ids_to_tokens(shown),
                     "action": action, "label id": int(labels[position])})
    return pd.DataFrame(rows)


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[str]:
    """The ``top_k`` tokens the model ranks highest at the (first) ``[MASK]`` in ``text``."""
    encoded = tokenizer(text, return_tensors="pt", return_token_type_ids=False)
    positions = torch.nonzero(encoded["input_ids"][0] == tokenizer.mask_token_id).flatten()
    if len(positions) == 0:
        raise ValueError(f"no {tokenizer.mask_token} in {text!r}")
    model.eval()
    with torch.inference_mode():
        logits = model(**encoded).logits[0, positions[0]]
    return tokenizer.convert_ids_to_tokens(logits.topk(top_k).indices.tolist())
