"""The book's decoding loop and logits processors (part "Generative models")."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from llmbook.generation.bpe import train_byte_level_bpe
from llmbook.generation.decoding import (
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    generate_tokens,
    process_logits,
    stream_text,
    stream_tokens,
)

VOCAB = 100
#: large random weights give peaked next-token distributions (the most probable token has
#: about 0.27 of the mass, not the 0.015 of the default init), so top-p, temperature and
#: their order change which tokens are drawn
SPREAD = 0.5


def _quiet(model):
    model.generation_config.eos_token_id = None  # generate must not stop early either
    model.generation_config.bos_token_id = None
    return model.eval()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request):
    torch.manual_seed(0)
    if request.param == "gpt2":
        config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=64,
                            bos_token_id=None, eos_token_id=None, initializer_range=SPREAD)
        return _quiet(GPT2LMHeadModel(config))
    config = LlamaConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, vocab_size=VOCAB,
                         max_position_embeddings=64, bos_token_id=None, eos_token_id=None,
                         initializer_range=SPREAD)
    return _quiet(LlamaForCausalLM(config))


@pytest.fixture(scope="module")
def prompts():
    return torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))


def _generate(model, prompts, new_tokens, **settings):
    return model.generate(prompts, attention_mask=torch.ones_like(prompts),
                          max_new_tokens=new_tokens, pad_token_id=0, **settings)


def test_greedy_equals_generate(model, prompts):
    ours = generate_tokens(model, prompts, 24)
    assert ours.shape == (2, 30)
    assert torch.equal(ours, _generate(model, prompts, 24, do_sample=False))


SAMPLING = [
    {"top_k": 0},
    {"temperature": 0.7, "top_k": 0},
    {"temperature": 1.3, "top_k": 10},
    {"top_k": 0, "top_p": 0.8},
    {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "repetition_penalty": 1.3},
]


@pytest.mark.parametrize("settings", SAMPLING, ids=lambda s: ",".join(f"{k}={v}" for k, v
                                                                       in s.items()))
def test_seeded_sampling_equals_generate(model, prompts, settings):
    torch.manual_seed(7)
    theirs = _generate(model, prompts, 24, do_sample=True, **settings)
    torch.manual_seed(7)
    assert torch.equal(generate_tokens(model, prompts, 24, do_sample=True, **settings), theirs)
    # a seed argument draws from its own generator: the same stream, global state untouched
    assert torch.equal(generate_tokens(model, prompts, 24, do_sample=True, seed=7,
                                       **settings), theirs)


def test_sampling_depends_on_the_seed(model, prompts):
    first = generate_tokens(model, prompts, 24, do_sample=True, seed=1)
    assert not torch.equal(first, generate_tokens(model, prompts, 24, do_sample=True, seed=2))
    assert torch.equal(first, generate_tokens(model, prompts, 24, do_sample=True, seed=1))


def test_greedy_with_repetition_penalty_equals_generate(model, prompts):
    ours = generate_tokens(model, prompts, 24, repetition_penalty=1.5)
    assert torch.equal(ours, _generate(model, prompts, 24, repetition_penalty=1.5))
    assert not torch.equal(ours, generate_tokens(model, prompts, 24))


@pytest.mark.parametrize("do_sample", [False, True])
def test_cache_loop_equals_no_cache_loop(model, prompts, do_sample):
    cached = generate_tokens(model, prompts, 24, do_sample=do_sample, seed=3, use_cache=True)
    uncached = generate_tokens(model, prompts, 24, do_sample=do_sample, seed=3,
                               use_cache=False)
    assert torch.equal(cached, uncached)


def test_end_of_sequence_stops_and_pads_like_generate(model, prompts):
    greedy = generate_tokens(model, prompts, 24)
    eos = int(greedy[0, 8])  # a token the first sequence produces early
    ours = generate_tokens(model, prompts, 24, eos_token_id=eos, pad_token_id=0)
    theirs = _generate(model, prompts, 24, eos_token_id=eos)
    assert torch.equal(ours, theirs)
    first_eos = (ours[0, 6:] == eos).nonzero()[0, 0] + 6
    assert (ours[0, first_eos + 1:] == 0).all()


def test_stream_tokens_yields_one_step_at_a_time(model, prompts):
    steps = list(stream_tokens(model, prompts, 5))
    assert len(steps) == 5 and all(step.shape == (2,) for step in steps)
    assert torch.equal(torch.stack(steps, dim=1), generate_tokens(model, prompts, 5)[:, 6:])


def test_stream_text_pieces_join_to_the_decoded_continuation():
    texts = ["the film was great and the acting superb", "a dull film, I hated it",
             "crème brûlée, naïve café"] * 5
    tokenizer = train_byte_level_bpe(texts, vocab_size=300)
    torch.manual_seed(0)
    lm = _quiet(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2,
                                           vocab_size=len(tokenizer), n_positions=64)))
    pieces = list(stream_text(lm, tokenizer, "the film", 30, do_sample=True, seed=0,
                              eos_token_id=None))
    ids = tokenizer("the film", return_tensors="pt").input_ids
    full = generate_tokens(lm, ids, 30, do_sample=True, seed=0)
    assert "".join(pieces) == tokenizer.decode(full[0, ids.shape[1]:], skip_special_tokens=True)
    assert len(pieces) > 1


# ------------------------------------------------------------------ processors, by hand

def test_top_k_keeps_the_k_largest_and_ties():
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0, -1.0]])
    kept = torch.isfinite(apply_top_k(logits, 2))
    assert kept.tolist() == [[False, True, True, False, False]]
    assert torch.isfinite(apply_top_k(logits, 3)).tolist() == [[False, True, True, True, False]]
    assert torch.isfinite(apply_top_k(logits, 1)).sum() == 2  # ties with the k-th stay
    assert torch.equal(apply_top_k(logits, 0), logits)
    assert torch.equal(apply_top_k(logits, 50), logits)
    assert apply_top_k(logits, 2)[0, 1] == 3.0  # kept logits are unchanged


@pytest.mark.parametrize(("p", "kept"), [(0.4, [0]), (0.5, [0]), (0.7, [0, 1]),
                                         (0.9, [0, 1, 2]), (0.97, [0, 1, 2, 3]),
                                         (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_the_smallest_nucleus(p, kept):
    probabilities = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    filtered = apply_top_p(probabilities.log(), p)
    assert torch.isfinite(filtered)[0].nonzero().flatten().tolist() == kept


def test_top_p_always_keeps_the_most_probable_token():
    logits = torch.tensor([[0.0, 10.0, 1.0]])
    assert torch.isfinite(apply_top_p(logits, 1e-6)).tolist() == [[False, True, False]]


def test_filters_match_transformers_on_random_logits():
    logits = torch.randn(4, 200, generator=torch.Generator().manual_seed(0)) * 3
    for k in (1, 5, 40):
        assert torch.equal(apply_top_k(logits, k), TopKLogitsWarper(k)(None, logits))
    for p in (0.1, 0.5, 0.9, 0.99):
        assert torch.equal(apply_top_p(logits, p), TopPLogitsWarper(p)(None, logits))
        kept = torch.isfinite(apply_top_p(logits, p))
        probabilities = logits.softmax(-1)
        for row in range(4):  # the kept set is the smallest top set with mass >= p
            mass = probabilities[row][kept[row]].sum()
            without_smallest = mass - probabilities[row][kept[row]].min()
            assert mass >= p - 1e-6 and without_smallest < p


def test_temperature_divides_and_reshapes():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    assert torch.allclose(apply_temperature(logits, 0.5), logits * 2)
    sharp, flat = (apply_temperature(logits, t).softmax(-1) for t in (0.5, 2.0))
    assert sharp[0, 0] > logits.softmax(-1)[0, 0] > flat[0, 0]


def test_repetition_penalty_by_hand():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    seen = torch.tensor([[0, 1, 1]])
    penalised = apply_repetition_penalty(logits, seen, 2.0)
    assert penalised.tolist() == [[1.0, -4.0, 1.0, 0.5]]
    assert torch.equal(apply_repetition_penalty(logits, seen, 1.0), logits)


def test_process_logits_warps_only_when_sampling():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    ids = torch.tensor([[0]])
    greedy = process_logits(logits, ids, do_sample=False, temperature=0.5, top_k=1,
                            repetition_penalty=2.0)
    assert greedy.tolist() == [[1.0, 1.0, 0.0, -1.0]]
    sampled = process_logits(logits, ids, do_sample=True, temperature=0.5, top_k=2)
    assert sampled[0, :2].tolist() == [4.0, 2.0] and math.isinf(sampled[0, 2])


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"temperature": -1.0},
                                 {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1},
                                 {"repetition_penalty": 0.0}])
def test_bad_settings_raise(model, prompts, bad):
    with pytest.raises(ValueError):
        generate_tokens(model, prompts, 4, do_sample=True, **bad)
