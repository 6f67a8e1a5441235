"""The from-scratch encoder (llmbook.models.transformer) against transformers' BERT, and its
figures."""

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure
from transformers import BertConfig, BertModel

from llmbook.data import load_sentiment
from llmbook.models import load_encoder, load_tokenizer
from llmbook.models.transformer import (
    attention_to_offset,
    bidirectional_mask,
    causal_mask,
    embed,
    encoder_layer,
    encoder_stack,
    layer_norm,
    merge_heads,
    multi_head_self_attention,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_positions,
    split_heads,
    weights_from_bert_layer,
)
from llmbook.plots import (
    plot_attention_head,
    plot_encoder_layer,
    plot_masks,
    plot_positions,
)

#: float32 through six layers: on every real (not [PAD]) token the from-scratch stack must
#: match MiniLM to this.  Measured on 32 test reviews: at most 5e-6 at any layer, on hidden
#: values up to 10.5 (the chapter's table); [PAD] positions drift to about 1e-4.
MINILM_ATOL = 2e-5


@pytest.fixture(scope="module")
def tiny():
    """A random 2-layer, 32-wide, 2-head BERT; weights wider than BERT's default std of 0.02
    so attention is far from uniform and a mistake in it shows."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=16, initializer_range=0.3,
                        attn_implementation="eager")
    return BertModel(config, add_pooling_layer=False).eval()


@pytest.fixture(scope="module")
def tiny_batch():
    torch.manual_seed(1)
    input_ids = torch.randint(5, 100, (2, 7))
    attention_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    return input_ids, attention_mask


@pytest.fixture(scope="module")
def minilm():
    model = load_encoder()
    model.set_attn_implementation("eager")
    return model, load_tokenizer()


@pytest.fixture(scope="module")
def reviews(minilm):
    texts = load_sentiment("rotten_tomatoes")["test"]["text"][:3]
    _, tokenizer = minilm
    return tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")


# ------------------------------------------------------------------ pieces


def test_split_and_merge_heads_are_inverse():
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    assert torch.equal(heads[:, 1], x[..., 4:8])  # head 1 owns dimensions 4..7
    assert torch.equal(merge_heads(heads), x)


def test_layer_norm_matches_torch():
    x, gamma, beta = torch.randn(3, 4, 8), torch.randn(8), torch.randn(8)
    expected = torch.nn.functional.layer_norm(x, (8,), gamma, beta, eps=1e-12)
    assert torch.allclose(layer_norm(x, (gamma, beta)), expected, atol=1e-5)


def test_masks():
    causal = causal_mask(5)
    assert torch.equal(causal, torch.tril(torch.ones(5, 5, dtype=torch.bool)))
    assert not causal.triu(diagonal=1).any() and causal.diagonal().all()
    assert bidirectional_mask(5).all()
    assert padding_mask(torch.tensor([[1, 1, 0]])).shape == (1, 1, 1, 3)


def test_attention_rows_sum_to_one_and_masked_keys_get_zero():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 4) for _ in range(3))
    keep = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    mask = causal_mask(6) & padding_mask(keep)
    output, weights = scaled_dot_product_attention(q, k, v, mask)
    assert output.shape == (2, 3, 6, 4) and weights.shape == (2, 3, 6, 6)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 6))
    assert torch.all(weights[~mask.expand_as(weights)] == 0)
    assert torch.all(weights[mask.expand_as(weights)] > 0)
    assert torch.allclose(output[:, :, 0], v[:, :, 0])  # the first token sees only itself


def test_attention_matches_torch_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    output, _ = scaled_dot_product_attention(q, k, v, causal_mask(5))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(output, expected, atol=1e-6)


def test_sinusoidal_positions():
    table = sinusoidal_positions(10, 8)
    assert table.shape == (10, 8)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0] * 4))
    assert torch.allclose(table[:, 0], torch.sin(torch.arange(10.0)))


# ----------------------------------------------------- against a tiny BERT


def test_encoder_layer_equals_bert_layer_with_padding(tiny, tiny_batch):
    input_ids, attention_mask = tiny_batch
    x = embed(tiny, input_ids)
    additive = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for layer in tiny.encoder.layer:
        with torch.no_grad():
            expected = layer(x, attention_mask=additive)
            expected = expected[0] if isinstance(expected, tuple) else expected
        ours, _ = encoder_layer(x, weights_from_bert_layer(layer), 2,
                                padding_mask(attention_mask))
        assert torch.allclose(ours, expected, atol=1e-5), (ours - expected).abs().max()
        x = ours


def test_padding_does_not_change_the_real_tokens(tiny, tiny_batch):
    input_ids, attention_mask = tiny_batch
    padded, _ = encoder_stack(tiny, input_ids[1:], attention_mask[1:])
    alone, _ = encoder_stack(tiny, input_ids[1:, :4])
    assert torch.allclose(padded[-1][:, :4], alone[-1], atol=1e-5)
    unmasked, _ = encoder_stack(tiny, input_ids[1:])  # the mask is what makes it so
    assert not torch.allclose(unmasked[-1][:, :4], alone[-1], atol=1e-3)


def test_encoder_stack_equals_tiny_bert(tiny, tiny_batch):
    input_ids, attention_mask = tiny_batch
    hidden, attentions = encoder_stack(tiny, input_ids, attention_mask)
    with torch.no_grad():
        reference = tiny(input_ids=input_ids, attention_mask=attention_mask,
                         output_attentions=True)
    assert torch.allclose(hidden[-1], reference.last_hidden_state, atol=1e-5)
    for ours, theirs in zip(attentions, reference.attentions, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6)


# -------------------------------------------------- against MiniLM, real reviews


def test_embeddings_equal_minilm(minilm, reviews):
    model, _ = minilm
    with torch.no_grad():
        expected = model.embeddings(input_ids=reviews["input_ids"])
    assert torch.allclose(embed(model, reviews["input_ids"]), expected, atol=1e-6)


def test_every_minilm_layer_is_reproduced(minilm, reviews):
    model, _ = minilm
    assert reviews["attention_mask"].min() == 0, "the reviews should need padding"
    with torch.no_grad():
        reference = model(**reviews, output_hidden_states=True)
    mask = padding_mask(reviews["attention_mask"])
    heads = model.config.num_attention_heads
    assert len(model.encoder.layer) == len(reference.hidden_states) - 1 == 6
    for i, layer in enumerate(model.encoder.layer):
        ours, _ = encoder_layer(reference.hidden_states[i], weights_from_bert_layer(layer),
                                heads, mask)
        gap = (ours - reference.hidden_states[i + 1]).abs().max()
        assert gap < MINILM_ATOL, (i, gap)


def test_full_stack_equals_minilm(minilm, reviews):
    model, _ = minilm
    hidden, attentions = encoder_stack(model, reviews["input_ids"], reviews["attention_mask"])
    with torch.no_grad():
        reference = model(**reviews, output_attentions=True)
    real = reviews["attention_mask"].bool()
    assert torch.allclose(hidden[-1][real], reference.last_hidden_state[real], atol=MINILM_ATOL)
    # [PAD] positions, which nothing reads, drift further apart through the stack
    assert torch.allclose(hidden[-1], reference.last_hidden_state, atol=1e-3)
    assert not torch.allclose(hidden[-2], reference.last_hidden_state, atol=1e-2)
    for ours, theirs in zip(attentions, reference.attentions, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5)
    padded_keys = ~reviews["attention_mask"].bool()[:, None, None, :]
    for weights in attentions:  # nobody attends to [PAD]; every row is a distribution
        assert padded_keys.any() and torch.all(weights[padded_keys.expand_as(weights)] == 0)
        assert torch.allclose(weights.sum(-1), torch.ones_like(weights[..., 0]))


def test_minilm_attention_is_causal_under_a_causal_mask(minilm, reviews):
    model, _ = minilm
    x = embed(model, reviews["input_ids"][:1])
    n = x.shape[1]
    _, weights = multi_head_self_attention(x, weights_from_bert_layer(model.encoder.layer[0]),
                                           model.config.num_attention_heads, causal_mask(n))
    above = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    assert torch.all(weights[..., above] == 0)
    assert torch.allclose(weights[..., 0, 0], torch.ones(1))  # token 0 sees only itself
    assert torch.allclose(weights.sum(-1), torch.ones_like(weights[..., 0]))


def test_attention_to_offset():
    eye_below = torch.diag(torch.ones(3), diagonal=-1)  # each token attends to the previous
    eye_below[0, 0] = 1.0
    weights = eye_below[None, None].repeat(2, 1, 1, 1)  # 2 reviews, 1 head, 4 tokens
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    assert attention_to_offset([weights], mask, offset=-1).item() == 1.0
    assert attention_to_offset([weights], mask, offset=1).item() == 0.0
    weights[1, 0, 3, 2] = 0.0  # a padded query: not counted
    assert attention_to_offset([weights], mask, offset=-1).item() == 1.0
    with pytest.raises(ValueError):
        attention_to_offset([weights], mask, offset=0)


# -------------------------------------------------------------------- figures


def test_figures(minilm, reviews):
    model, tokenizer = minilm
    config = model.config
    tokens = tokenizer.convert_ids_to_tokens(reviews["input_ids"][0])
    _, attentions = encoder_stack(model, reviews["input_ids"][:1])
    figures = [
        plot_encoder_layer(config.hidden_size, config.num_attention_heads,
                           config.intermediate_size, config.num_hidden_layers),
        plot_attention_head(tokens, attentions[0][0, 0].numpy(), title="layer 1, head 1"),
        plot_masks({"bidirectional": bidirectional_mask(6), "causal": causal_mask(6)}),
        plot_positions({"sinusoidal": sinusoidal_positions(32, 64)}),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
    assert len(figures[2].axes) == 2
    padded = bidirectional_mask(4) & padding_mask(torch.tensor([[1, 1, 1, 0]]))[0, 0]
    labelled = plot_masks({"causal": causal_mask(3), "padded": padded},
                          {"causal": ["a", "b", "c"], "padded": ["a", "b", "c", "[PAD]"]})
    assert [t.get_text() for t in labelled.axes[1].get_xticklabels()][-1] == "[PAD]"
    with pytest.raises(ValueError):
        plot_attention_head(tokens[:-1], attentions[0][0, 0].numpy())
    plt.close("all")
