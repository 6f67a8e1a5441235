"""A byte-level BPE tokenizer learned from a corpus (part "Generative models", chapter
"Next-token pre-training").

GPT-2's tokenizer: text is read as UTF-8 bytes, each byte mapped to one of 256 printable
symbols, and merges of frequent adjacent pairs are learned on top -- so every string can be
encoded (no unknown token) and decoding the ids gives the text back byte for byte.  One
special token, ``<|endoftext|>``, separates documents and serves as end of sequence,
beginning of sequence and padding.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

END_OF_TEXT = "<|endoftext|>"


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int, model_max_length: int = 1024):
    """A ``PreTrainedTokenizerFast`` with ``vocab_size`` entries learned from ``texts``.

    ``vocab_size`` counts the 256 byte symbols and the special token, so it must exceed 257.
    """
    if vocab_size <= 257:
        raise ValueError(f"vocab_size must exceed 257 (256 bytes + {END_OF_TEXT}), "
                         f"got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=END_OF_TEXT,
                                   bos_token=END_OF_TEXT, pad_token=END_OF_TEXT,
                                   unk_token=None, model_max_length=model_max_length)
