"""Causal-LM pre-training from scratch (part "Generative models"), at smoke size."""

import math

import pytest
import torch
from datasets import Dataset

from llmbook.core import get_profile
from llmbook.generation.bpe import train_byte_level_bpe
from llmbook.generation.causal_lm import IGNORE_INDEX
from llmbook.generation.pretraining import (
    PROMPTS,
    CausalCollator,
    ClmSpec,
    clm_spec_for,
    pretrain_clm,
    tokenize_for_clm,
)


def test_sequences_start_with_end_of_text_and_pads_are_ignored():
    tokenizer = train_byte_level_bpe(["a good film", "a bad film, really bad"] * 5, 300)
    data = tokenize_for_clm(Dataset.from_dict({"text": ["a good film", "a bad film " * 20]}),
                            tokenizer, max_length=8)
    assert [row[0] for row in data["input_ids"]] == [tokenizer.eos_token_id] * 2
    assert len(data["input_ids"][1]) == 8
    batch = CausalCollator(tokenizer.eos_token_id)([data[0], data[1]])
    short = len(data["input_ids"][0])
    assert batch["input_ids"].shape == (2, 8)
    assert (batch["labels"][0, short:] == IGNORE_INDEX).all()
    assert torch.equal(batch["labels"][1], batch["input_ids"][1])


def test_spec_follows_the_profile():
    profile = get_profile("smoke")
    spec = clm_spec_for(profile, steps=3)
    assert (spec.hidden_size, spec.layers, spec.steps) == (profile.clm_hidden,
                                                           profile.clm_layers, 3)
    assert spec.vocab_size == profile.scratch_vocab_size
    assert spec.max_length == profile.mlm_max_length


def test_smoke_pretraining_lowers_held_out_perplexity(tmp_path):
    spec = ClmSpec(corpus_size=128, eval_size=16, max_length=32, vocab_size=400,
                   hidden_size=32, layers=1, steps=30, batch_size=16, learning_rate=3e-3)
    run = pretrain_clm(spec, out=tmp_path / "clm")
    before, after = run.metrics["before"], run.metrics["after"]
    assert not run.cached and (run.model_dir / "config.json").exists()
    assert after["perplexity"] < 0.6 * before["perplexity"]
    assert before["perplexity"] == pytest.approx(math.exp(before["loss"]))
    assert len(after["samples"]) == len(PROMPTS)
    assert all(s.startswith(p) for s, p in zip(after["samples"], PROMPTS, strict=True))
    assert run.metrics["steps_per_second"] > 0
    again = pretrain_clm(spec, out=tmp_path / "clm")
    assert again.cached and again.metrics["after"] == after
