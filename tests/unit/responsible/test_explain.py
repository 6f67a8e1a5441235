"""Attributions, attention maps, failure tags and the counterfactual probe
(llmbook.responsible.explain)."""

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertForSequenceClassification

from llmbook.models import load_tokenizer
from llmbook.responsible import (
    GENDER_SWAPS,
    attention_maps,
    counterfactual_shift,
    error_rates_by_tag,
    failure_tags,
    fill_template,
    gradient_x_input,
    integrated_gradients,
    merge_wordpieces,
    shift_summary,
    swap_words,
)

TEXT = "A wonderful film, though the ending is not what I hoped."


@pytest.fixture(scope="module")
def tiny(tiny_bert_config):
    """A randomly initialised 2-layer BERT classifier with MiniLM's tokenizer.

    Weights are drawn wider than BERT's default (std 0.02, which gives a nearly constant
    output) so the output depends on the input and the path integral is not trivial.
    """
    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    config = tiny_bert_config(num_hidden_layers=2,
                        num_attention_heads=4, num_labels=2,
                        max_position_embeddings=64, initializer_range=0.5)
    return BertForSequenceClassification(config).eval(), tokenizer


def test_integrated_gradients_are_complete_and_one_per_token(tiny):
    model, tokenizer = tiny
    attribution = integrated_gradients(model, tokenizer, TEXT, steps=64)
    n_tokens = len(tokenizer(TEXT)["input_ids"])
    assert attribution.scores.shape == (n_tokens,) and len(attribution.tokens) == n_tokens
    difference = attribution.log_odds - attribution.baseline_log_odds
    assert abs(difference) > 1e-3  # a non-trivial check
    assert attribution.completeness_gap < 0.01 * abs(difference) + 1e-4
    # special tokens equal the baseline, so they get exactly zero
    assert attribution.scores[0] == 0 and attribution.scores[-1] == 0


def test_more_steps_tighten_completeness(tiny):
    model, tokenizer = tiny
    coarse = integrated_gradients(model, tokenizer, TEXT, steps=1, target=1)
    fine = integrated_gradients(model, tokenizer, TEXT, steps=64, target=1)
    assert fine.completeness_gap < 0.1 * coarse.completeness_gap
    np.testing.assert_allclose(fine.log_odds, coarse.log_odds, rtol=1e-5)


def test_target_defaults_to_prediction_and_is_checked(tiny):
    model, tokenizer = tiny
    with torch.no_grad():
        predicted = int(model(**tokenizer([TEXT], return_tensors="pt")).logits.argmax())
    assert integrated_gradients(model, tokenizer, TEXT, steps=4).target == predicted
    for_other = integrated_gradients(model, tokenizer, TEXT, steps=4, target=1 - predicted)
    assert for_other.probability < 0.5 + 1e-6
    with pytest.raises(ValueError):
        integrated_gradients(model, tokenizer, TEXT, target=5)
    with pytest.raises(ValueError):
        integrated_gradients(model, tokenizer, TEXT, steps=0)


def test_gradient_x_input_matches_the_gradient_at_the_input(tiny):
    model, tokenizer = tiny
    attribution = gradient_x_input(model, tokenizer, TEXT, target=1)
    encoded = tokenizer([TEXT], return_tensors="pt")
    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_()
    log_p = torch.log_softmax(model(inputs_embeds=embeddings).logits, -1)[0]
    log_odds = log_p[1] - log_p[0]
    (gradient,) = torch.autograd.grad(log_odds, embeddings)
    baseline_ids = torch.full_like(encoded["input_ids"], tokenizer.pad_token_id)
    baseline_ids[0, [0, -1]] = encoded["input_ids"][0, [0, -1]]
    difference = embeddings - model.get_input_embeddings()(baseline_ids)
    expected = (difference * gradient).sum(-1)[0].detach().numpy()
    np.testing.assert_allclose(attribution.scores, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(attribution.log_odds, log_odds.item(), rtol=1e-4)


def test_attention_maps_are_row_stochastic(tiny):
    model, tokenizer = tiny
    tokens, maps = attention_maps(model, tokenizer, TEXT)
    assert maps.shape == (2, 4, len(tokens), len(tokens))
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)


def test_swap_words_swaps_both_ways_keeps_case_and_whole_words():
    text = "He said his mother, THE actress, met her son. Shelter the men!"
    swapped = swap_words(text, GENDER_SWAPS)
    assert swapped == "She said her father, THE actor, met his daughter. Shelter the women!"
    assert swap_words("the theme", GENDER_SWAPS) == "the theme"
    assert swap_words(swap_words("she and he", GENDER_SWAPS), GENDER_SWAPS) == "she and he"
    with pytest.raises(ValueError):
        swap_words("x", {})


def test_fill_template_and_counterfactual_shift(tiny):
    model, tokenizer = tiny
    assert fill_template(["{name} was great.", "I liked {name}."], ["Ann", "Bob"]) == [
        "Ann was great.", "Bob was great.", "I liked Ann.", "I liked Bob."]
    with pytest.raises(ValueError):
        fill_template(["no slot"], ["Ann"])
    shifts = counterfactual_shift(model, tokenizer, ["Ann was great.", "Ann was great."],
                                  ["Bob was great.", "Ann was great."])
    assert shifts.loc[1, "delta"] == pytest.approx(0.0, abs=1e-6) and not shifts.loc[1, "flipped"]
    np.testing.assert_allclose(shifts["delta"], shifts["p_swapped"] - shifts["p_original"])
    summary = shift_summary(shifts)
    assert summary["pairs"] == 2 and summary["flips"] == int(shifts["flipped"].sum())
    with pytest.raises(ValueError):
        counterfactual_shift(model, tokenizer, ["a"], ["a", "b"])


def test_failure_tags_and_error_rates():
    texts = ["not good", "it isn't bad", "great fun", "oh great, another sequel...", "fine"]
    tags = failure_tags(texts, [3, 5, 3, 9, 2])
    assert tags["negation"].tolist() == [True, True, False, False, False]
    assert tags["sarcasm_marker"].tolist() == [False, False, False, True, False]
    assert tags["long"].tolist() == [False, False, False, True, False]
    rates = error_rates_by_tag(tags, [False, False, True, True, True])
    assert rates.loc["negation", "error_rate_with"] == 1.0
    assert rates.loc["negation", "error_rate_without"] == 0.0
    assert isinstance(rates, pd.DataFrame) and rates.loc["negation", "n_with"] == 2
    # 2 of 2 wrong vs 0 of 3: Fisher's exact test gives p = 0.1 (2 of the 10 ways to pick two)
    assert rates.loc["negation", "p_value"] == pytest.approx(0.1)
    assert rates.loc["long", "p_value"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        failure_tags(texts, [1, 2])


def test_attribution_and_attention_figures_render(tiny):
    from llmbook.plots import plot_attention_maps, plot_token_attributions

    model, tokenizer = tiny
    attribution = integrated_gradients(model, tokenizer, TEXT * 3, steps=2)
    figure = plot_token_attributions([("long, wrapped", attribution.tokens, attribution.scores),
                                      ("short", ["a", "b"], [1.0, -1.0])])
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "long, wrapped" in texts and "b" in texts
    assert figure.get_size_inches()[1] > 1  # the long row wrapped onto several lines
    tokens, maps = attention_maps(model, tokenizer, TEXT)
    assert len(plot_attention_maps(tokens, maps).axes) == 3  # 2 layers, one empty panel


def test_merge_wordpieces_keeps_the_total():
    words, scores = merge_wordpieces(["[CLS]", "un", "##bear", "##able", "film", "[SEP]"],
                                     [0.0, 1.0, 0.5, -0.25, 2.0, 0.0])
    assert words == ["unbearable", "film"]
    np.testing.assert_allclose(scores, [1.25, 2.0])
    with pytest.raises(ValueError):
        merge_wordpieces(["a"], [1.0, 2.0])
