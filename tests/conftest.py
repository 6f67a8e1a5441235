"""Shared fixtures: the tests run offline in the smoke profile, like CI.

``tiny_bert_config`` and ``tiny_classifier_dir`` are the one tiny model of the test suite: a
randomly initialised BERT, 32 wide, with MiniLM's tokenizer (the loop tests of
``tests/unit/training`` keep their own, smaller ones, unchanged since the loop was split).
``tiny_gpt_dir`` is its causal-LM counterpart: a 1-layer GPT-2 with a tiny byte-level BPE.
"""

import importlib.util
import os

os.environ.setdefault("LLMBOOK_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, set_seed  # noqa: E402

from llmbook.data import LABEL_NAMES  # noqa: E402
from llmbook.models import load_tokenizer  # noqa: E402

TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}


@pytest.fixture(scope="session")
def minilm_tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny_bert_config(minilm_tokenizer):
    """``tiny_bert_config(**overrides)``: a 1-layer, 32-wide BertConfig on MiniLM's vocabulary."""
    def make(**overrides) -> BertConfig:
        return BertConfig(**{"vocab_size": minilm_tokenizer.vocab_size, **TINY_BERT, **overrides})
    return make


@pytest.fixture(scope="session")
def tiny_classifier_dir(tiny_bert_config):
    """``tiny_classifier_dir(directory, layers=2, heads=4, **config)``: save a tiny classifier with
    MiniLM's tokenizer (``model_max_length`` 32) and label names into ``directory``; return it.
    ``config`` overrides BertConfig fields (e.g. ``initializer_range=0.2`` for a model whose
    random predictions are far from 50/50)."""
    def make(directory, layers: int = 2, heads: int = 4, **overrides):
        set_seed(0)
        tokenizer = load_tokenizer()
        tokenizer.model_max_length = 32
        config = tiny_bert_config(num_hidden_layers=layers, num_attention_heads=heads,
                                  num_labels=2, max_position_embeddings=64,
                                  id2label=dict(enumerate(LABEL_NAMES)),
                                  label2id={n: i for i, n in enumerate(LABEL_NAMES)},
                                  **overrides)
        BertForSequenceClassification(config).eval().save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return directory
    return make


@pytest.fixture
def hide_package(monkeypatch):
    """``hide_package(name)``: make ``name`` look uninstalled to ``importlib.util.find_spec``."""
    real = importlib.util.find_spec

    def hide(name: str) -> None:
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda module, *a: None if module == name else real(module, *a))
    return hide


@pytest.fixture(scope="session")
def tiny_gpt_dir():
    """``tiny_gpt_dir(directory, context=48)``: save a 1-layer, 16-wide GPT-2 with a 300-entry
    byte-level BPE vocabulary (its eos is ``<|endoftext|>``) into ``directory``; return it."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from llmbook.generation.bpe import train_byte_level_bpe

    def make(directory, context: int = 48):
        texts = ["the film was great and the acting superb", "a dull film, I hated it"] * 5
        tokenizer = train_byte_level_bpe(texts, vocab_size=300)
        torch.manual_seed(0)
        config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer),
                            n_positions=context, bos_token_id=tokenizer.eos_token_id,
                            eos_token_id=tokenizer.eos_token_id, initializer_range=0.5)
        GPT2LMHeadModel(config).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return directory
    return make
