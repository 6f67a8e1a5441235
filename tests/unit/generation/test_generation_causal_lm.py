"""The causal-LM loss, mask, perplexity and sample-diversity measures (part "Generative
models")."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from llmbook.generation import causal_mask
from llmbook.generation.bpe import train_byte_level_bpe
from llmbook.generation.causal_lm import (
    causal_lm_loss,
    distinct_n,
    perplexity_of_texts,
    repetition_rate,
    text_nll,
)

TEXTS = ["the film was great and the acting superb", "a dull film, I hated it",
         "crème brûlée, naïve café", "the end"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_byte_level_bpe(TEXTS * 5, vocab_size=300)


def _gpt2(vocab=100):
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=vocab,
                                      n_positions=64)).eval()


def _llama(vocab=100):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, hidden_size=32,
                                        num_attention_heads=4, num_key_value_heads=2,
                                        intermediate_size=64, vocab_size=vocab,
                                        max_position_embeddings=64)).eval()


@pytest.mark.parametrize("build", [_gpt2, _llama], ids=["gpt2", "llama"])
def test_causal_loss_by_hand_equals_the_models(build):
    model = build()
    ids = torch.randint(0, 100, (3, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[0, 8:] = -100  # padding is ignored
    labels[2, 3] = -100
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels)
    assert torch.allclose(causal_lm_loss(out.logits, labels), out.loss, atol=1e-6)


def test_causal_loss_is_the_mean_next_token_cross_entropy():
    logits = torch.randn(1, 4, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[3, 1, 4, 2]])
    log_probs = logits.log_softmax(-1)
    # position t predicts token t + 1: pairs (0 -> 1), (1 -> 4), (2 -> 2); position 3 has none
    by_hand = -(log_probs[0, 0, 1] + log_probs[0, 1, 4] + log_probs[0, 2, 2]) / 3
    assert torch.allclose(causal_lm_loss(logits, labels), by_hand)
    # unshifted (predicting the token at one's own position) would be a different number
    unshifted = torch.nn.functional.cross_entropy(logits[0], labels[0])
    assert not torch.allclose(causal_lm_loss(logits, labels), unshifted)


def test_causal_mask_is_lower_triangular():
    mask = causal_mask(4)
    assert mask.tolist() == [[True, False, False, False], [True, True, False, False],
                             [True, True, True, False], [True, True, True, True]]


def test_perplexity_is_the_exp_of_the_models_loss(tokenizer):
    model = _gpt2(len(tokenizer))
    ids = tokenizer(TEXTS[0], return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    assert perplexity_of_texts(model, tokenizer, TEXTS[:1]) == pytest.approx(
        math.exp(float(loss)), rel=1e-5)
    # an untrained model is about as unsure as a uniform guess over the vocabulary
    assert 0.5 * len(tokenizer) < perplexity_of_texts(model, tokenizer, TEXTS) < 2 * len(
        tokenizer)


def test_perplexity_does_not_depend_on_batching(tokenizer):
    model = _llama(len(tokenizer))
    one_by_one = text_nll(model, tokenizer, TEXTS, batch_size=1)
    batched = text_nll(model, tokenizer, TEXTS, batch_size=3)
    assert batched[1] == one_by_one[1] == sum(len(tokenizer(t).input_ids) - 1 for t in TEXTS)
    assert batched[0] == pytest.approx(one_by_one[0], rel=1e-5)


def test_perplexity_needs_something_to_score(tokenizer):
    with pytest.raises(ValueError, match="two or more tokens"):
        perplexity_of_texts(_gpt2(len(tokenizer)), tokenizer, ["a"])


def test_distinct_n_by_hand():
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b)
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(1 / 2)  # pooled over samples
    assert distinct_n([[1, 2, 3]], 2) == 1.0
    assert distinct_n(["a"], 2) == 0.0


def test_repetition_rate_by_hand():
    assert repetition_rate(["a b c d"], 2) == 0.0
    assert repetition_rate(["a b a b a b"], 2) == pytest.approx(1 - 2 / 5)
    # "x" has no bigram and is skipped
    assert repetition_rate(["a b a b a b", "a b c d", "x"], 2) == pytest.approx((0.6 + 0) / 2)
    assert repetition_rate(["x"], 4) == 0.0
