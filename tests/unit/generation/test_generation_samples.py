"""Decoding methods side by side (part "Generative models", chapter "Generating text and the
KV cache"): equal-length prompts, samples from the loop or beam search, their measures."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llmbook.generation.bpe import train_byte_level_bpe
from llmbook.generation.causal_lm import perplexity_of_texts
from llmbook.generation.decoding import generate_tokens
from llmbook.generation.samples import (
    DECODING_METHODS,
    compare_decoding,
    generate_samples,
    prompt_texts,
    review_prompts,
    sample_metrics,
    temperature_methods,
)

TEXTS = ["the film was great and the acting superb", "a dull film, I hated it",
         "great", "the acting was dull but the film was great"] * 3


@pytest.fixture(scope="module")
def tokenizer():
    return train_byte_level_bpe(TEXTS, vocab_size=300)


def _model(tokenizer, context=32, seed=0):
    torch.manual_seed(seed)
    end = tokenizer.eos_token_id
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer),
                        n_positions=context, bos_token_id=end, eos_token_id=end,
                        pad_token_id=end, initializer_range=0.5)
    return GPT2LMHeadModel(config).eval()


def test_prompts_are_the_first_tokens_of_long_enough_texts(tokenizer):
    ids = review_prompts(tokenizer, TEXTS, count=3, length=4)
    assert ids.shape == (3, 4)
    first = tokenizer(TEXTS[0], add_special_tokens=False).input_ids[:4]
    assert ids[0].tolist() == first
    assert ids[2].tolist() == tokenizer(TEXTS[3], add_special_tokens=False).input_ids[:4]
    started = review_prompts(tokenizer, TEXTS, count=1, length=4, start_id=0)
    assert started[0].tolist() == [0, *first[:3]]
    with pytest.raises(ValueError, match="have 50 tokens"):
        review_prompts(tokenizer, TEXTS, count=2, length=50)


def test_samples_come_from_the_loop_or_from_beam_search(tokenizer):
    model = _model(tokenizer)
    ids = review_prompts(tokenizer, TEXTS, count=2, length=4)
    eos = tokenizer.eos_token_id
    greedy = generate_samples(model, tokenizer, ids, 6)
    expected = generate_tokens(model, ids, 6, eos_token_id=eos)[:, 4:]
    assert greedy == tokenizer.batch_decode(expected, skip_special_tokens=True)
    sampled = generate_samples(model, tokenizer, ids, 6, seed=3, do_sample=True, top_p=0.9)
    assert sampled == generate_samples(model, tokenizer, ids, 6, seed=3, do_sample=True,
                                       top_p=0.9)
    beams = generate_samples(model, tokenizer, ids, 6, num_beams=3)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), num_beams=3,
                         max_new_tokens=6, do_sample=False, pad_token_id=eos)
    assert beams == tokenizer.batch_decode(out[:, 4:], skip_special_tokens=True)


def test_samples_stop_at_the_context(tokenizer):
    model = _model(tokenizer, context=8)
    ids = review_prompts(tokenizer, TEXTS, count=1, length=5)
    out = generate_tokens(model, ids, 3, eos_token_id=tokenizer.eos_token_id)  # 100 -> 3
    assert generate_samples(model, tokenizer, ids, 100) == tokenizer.batch_decode(
        out[:, 5:], skip_special_tokens=True)


def test_sample_metrics_by_hand(tokenizer):
    scorer = _model(tokenizer, seed=1)
    continuations = [" a b c a b c a b", " c d e"]
    metrics = sample_metrics(continuations, ["x", "y"], scorer, tokenizer, max_length=32)
    # bigrams: ab bc ca ab bc ca ab (+) cd de -> 9, of which ab bc ca cd de distinct
    assert metrics["distinct-2"] == pytest.approx(5 / 9)
    # 4-grams of the first: abca bcab cabc abca bcab -> 2 of 5 repeat; the second has none
    assert metrics["repetition rate"] == pytest.approx(2 / 5)
    assert metrics["perplexity (other model)"] == pytest.approx(
        perplexity_of_texts(scorer, tokenizer, ["x a b c a b c a b", "y c d e"], 32))
    assert metrics["words per sample"] == 5.5


def test_compare_decoding_has_one_row_per_method(tokenizer):
    model, scorer = _model(tokenizer), _model(tokenizer, seed=1)
    ids = review_prompts(tokenizer, TEXTS, count=2, length=4)
    methods = {**DECODING_METHODS, **temperature_methods([0.5, 1.5])}
    table, samples = compare_decoding(model, tokenizer, ids, scorer, tokenizer, methods, 6)
    assert list(table.index) == [*DECODING_METHODS, "T=0.5", "T=1.5"]
    assert {"distinct-2", "repetition rate", "perplexity (other model)"} <= set(table)
    prompts = prompt_texts(tokenizer, ids)
    assert all(len(rows) == 2 and rows[0].startswith(prompts[0]) for rows in samples.values())
    assert table["distinct-2"].between(0, 1).all()
    assert (table["perplexity (other model)"] > 1).all()
