"""Masked-LM and causal-LM side by side (part "Generative models"): targets and step cost."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llmbook.generation.bpe import train_byte_level_bpe
from llmbook.generation.objectives import (
    objective_batches,
    prediction_targets,
    training_step_seconds,
)
from llmbook.pretraining.masking import BertForSparseMaskedLM

TEXTS = ["the film was great and the acting superb, a real gem of a movie",
         "a dull film, I hated it and I would not recommend it to anyone at all"] * 4


@pytest.fixture(scope="module")
def bpe():
    return train_byte_level_bpe(TEXTS, vocab_size=300)


def test_causal_lm_learns_from_every_token_masked_lm_from_a_few(minilm_tokenizer, bpe):
    batches = objective_batches(TEXTS, minilm_tokenizer, bpe, max_length=32, seed=0)
    causal = prediction_targets(batches["causal-LM"], "causal-LM")
    # <|endoftext|> first, then every text token (up to max_length - 1) is predicted
    text_tokens = sum(min(31, len(bpe(t, add_special_tokens=False).input_ids)) for t in TEXTS)
    assert causal == text_tokens
    masked = prediction_targets(batches["masked-LM"], "masked-LM")
    real = int(batches["masked-LM"]["attention_mask"].sum()) - 2 * len(TEXTS)  # no [CLS]/[SEP]
    assert 0 < masked < 0.35 * real < causal
    with pytest.raises(ValueError, match="objective"):
        prediction_targets(batches["causal-LM"], "prefix-LM")


def test_step_seconds_times_both_and_trains_them(minilm_tokenizer, tiny_bert_config, bpe):
    batches = objective_batches(TEXTS, minilm_tokenizer, bpe, max_length=32)
    torch.manual_seed(0)
    bert = BertForSparseMaskedLM(tiny_bert_config(num_hidden_layers=1))
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(bpe), n_positions=32, n_embd=16,
                                     n_layer=1, n_head=2))
    before = gpt.lm_head.weight.detach().clone()
    seconds = training_step_seconds({"masked-LM": (bert, batches["masked-LM"]),
                                     "causal-LM": (gpt, batches["causal-LM"])}, repeats=2)
    assert set(seconds) == {"masked-LM", "causal-LM"} and min(seconds.values()) > 0
    assert not torch.equal(before, gpt.lm_head.weight)  # an optimizer step was taken
    with pytest.raises(ValueError):
        training_step_seconds({}, repeats=0)
