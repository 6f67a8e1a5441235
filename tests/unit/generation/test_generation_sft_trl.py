"""The book's loop next to TRL's SFTTrainer (chapter 8), on a tiny Llama with SmolLM2's
tokenizer: both trainers see the same conversations and make the same number of updates."""

import math

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from llmbook.generation import sft_trl
from llmbook.generation.sft import SftSpec
from llmbook.models.loading import SMOLLM2_FILE, smollm2_dir


@pytest.fixture
def tiny_generator(monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_FILE)

    def load_generator():
        torch.manual_seed(0)  # the same starting weights for every trainer
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                             num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                             max_position_embeddings=512)
        return tokenizer, LlamaForCausalLM(config).eval()

    monkeypatch.setattr(sft_trl, "load_generator", load_generator)


def test_both_trainers_make_the_same_updates_on_the_same_text(tiny_generator):
    spec = SftSpec(sentiment_size=8, writing_size=4, support_repeats=0, validation_size=4,
                   batch_size=4, max_length=128, learning_rate=1e-3)
    ours, theirs = sft_trl.compare_with_trl(spec, size=8)
    assert (ours["trainer"], theirs["trainer"]) == ("book's loop", "TRL SFTTrainer")
    assert ours["steps"] == theirs["steps"] == 2  # 8 conversations, batches of 4, one epoch
    assert abs(ours["tokens"] - theirs["tokens"]) <= 0.05 * ours["tokens"]
    for row in (ours, theirs):
        assert row["tokens_per_second"] > 0 and math.isfinite(row["heldout_loss"])
        assert row["heldout_loss_before"] == ours["heldout_loss_before"]  # one baseline
        # a random 49k-way model starts near ln(vocabulary) and two small steps stay near it
        assert abs(row["heldout_loss"] - row["heldout_loss_before"]) < 1.0
