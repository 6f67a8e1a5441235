"""Training-practice options of chapter 13: FGM, learning-rate schedules, dropout, cache keys."""

import copy
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, set_seed

from llmbook.adaptation import DataRecipe, FinetuneSpec
from llmbook.core import Run, get_profile
from llmbook.data import tokenize_dataset
from llmbook.models import load_classifier, load_tokenizer
from llmbook.plots import plot_lr_sweep
from llmbook.practice import last_eval, remedy_summary
from llmbook.training import TrainConfig, adversarial_backward, schedule_lrs, train

PEAK, WARMUP, TOTAL = 1e-3, 10, 100


def tiny_classifier(seed=0):
    set_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2)
    return BertForSequenceClassification(config)


def batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 50, (4, 8), generator=generator),
            "attention_mask": torch.ones(4, 8, dtype=torch.long),
            "labels": torch.tensor([0, 1, 0, 1])}


def clean_gradients(model, inputs):
    model.zero_grad()
    model(**inputs).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_fgm_restores_embeddings_exactly_and_adds_adversarial_gradients():
    model, inputs = tiny_classifier(), batch()
    clean_grads = clean_gradients(model, inputs)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    clean_loss = model(**inputs).loss.item()
    # the adversarial gradients, computed by hand on a perturbed copy
    name = "bert.embeddings.word_embeddings.weight"
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        perturbed.get_input_embeddings().weight.add_(clean_grads[name] / clean_grads[name].norm())
    expected = clean_gradients(perturbed, inputs)

    adversarial_loss = adversarial_backward(model, inputs, epsilon=1.0,
                                            backward=lambda loss: loss.backward())
    for key, param in model.named_parameters():
        assert torch.equal(param, before[key]), key  # bit for bit, not approximately
        assert torch.allclose(param.grad, clean_grads[key] + expected[key], atol=1e-6), key
    assert adversarial_loss.item() > clean_loss  # a step up the loss gradient


def test_fgm_perturbation_has_size_epsilon():
    model, inputs = tiny_classifier(), batch()
    clean_gradients(model, inputs)
    embeddings = model.get_input_embeddings().weight
    before, seen = embeddings.detach().clone(), []

    def record(module, args, output):
        seen.append((module.weight.detach() - before).norm().item())

    handle = model.get_input_embeddings().register_forward_hook(record)
    adversarial_backward(model, inputs, epsilon=0.5, backward=lambda loss: loss.backward())
    handle.remove()
    assert seen == [pytest.approx(0.5, rel=1e-4)]


def test_fgm_needs_a_clean_gradient():
    model = tiny_classifier()
    with pytest.raises(ValueError, match="gradient"):
        adversarial_backward(model, batch(), 1.0, lambda loss: loss.backward())
    with pytest.raises(ValueError):
        TrainConfig(adversarial_epsilon=-1.0)


def test_training_with_fgm_runs_and_is_repeatable():
    tokenizer = load_tokenizer()
    texts = [f"{word} movie number {i}" for i in range(16) for word in ("good", "bad")]
    data = tokenize_dataset(Dataset.from_dict({"text": texts, "label": [1, 0] * 16}),
                            tokenizer, max_length=16)

    def run():
        set_seed(0)
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=32, num_labels=2)
        train_config = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2, log_every=1,
                                   adversarial_epsilon=1.0, progress=False)
        return train(BertForSequenceClassification(config), tokenizer, data, data, train_config)

    first, second = run(), run()
    losses = [row["loss"] for row in first.train_log]
    assert losses == [row["loss"] for row in second.train_log]
    assert len(losses) == 8 and all(math.isfinite(loss) for loss in losses)


def closed_form(name, step):
    """The textbook formulas of the schedules, at optimizer step ``step`` (0-based)."""
    if name == "constant":
        return PEAK
    if step < WARMUP:
        return PEAK * step / WARMUP
    progress = (step - WARMUP) / (TOTAL - WARMUP)
    if name == "constant_with_warmup":
        return PEAK
    if name == "linear":
        return PEAK * max(0.0, 1 - progress)
    if name == "cosine":
        return PEAK * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(name)


@pytest.mark.parametrize("name", ["constant", "constant_with_warmup", "linear", "cosine"])
def test_schedules_match_closed_forms(name):
    rates = schedule_lrs(PEAK, WARMUP, TOTAL, TOTAL, name=name)
    expected = [closed_form(name, step) for step in range(TOTAL)]
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_dropout_option_sets_both_probabilities():
    model = load_classifier(dropout=0.3)
    assert model.config.hidden_dropout_prob == 0.3
    assert model.config.attention_probs_dropout_prob == 0.3
    assert load_classifier().config.hidden_dropout_prob == 0.1  # MiniLM's own
    with pytest.raises(ValueError):
        load_classifier(dropout=1.0)


def test_new_options_enter_the_cache_key_only_when_set():
    spec = FinetuneSpec.from_profile("rotten_tomatoes", get_profile("smoke"))
    key = spec.cache_config()
    assert "dropout" not in key and "augment" not in key
    assert "adversarial_epsilon" not in key["train"]
    assert replace(spec, dropout=0.3).cache_config()["dropout"] == 0.3
    assert replace(spec, data=DataRecipe(augment="eda")).cache_config()["augment"] == "eda"
    fgm = FinetuneSpec.from_profile("rotten_tomatoes", get_profile("smoke"),
                                    adversarial_epsilon=1.0)
    assert fgm.cache_config()["train"]["adversarial_epsilon"] == 1.0


def fake_run(validation, test, seconds, augment_seconds=0.0):
    metrics = {"best_validation": {"accuracy": validation}, "test": {"accuracy": test},
               "train_seconds": seconds, "augment_seconds": augment_seconds,
               "eval_log": [{"step": 1, "eval_accuracy": validation - 0.1}]}
    return Run(Path("unused"), metrics, cached=True)


def test_remedy_summary_gains_and_time_ratios():
    runs = {"baseline": [fake_run(0.70, 0.60, 10.0), fake_run(0.72, 0.64, 10.0)],
            "augment": [fake_run(0.74, 0.66, 15.0, 5.0), fake_run(0.76, 0.66, 15.0, 5.0)]}
    table = remedy_summary(runs)
    assert list(table.index) == ["baseline", "augment"]
    assert table.loc["augment", "test gain (points)"] == pytest.approx(4.0)
    assert table.loc["augment", "validation gain (points)"] == pytest.approx(4.0)
    assert table.loc["augment", "time vs baseline"] == pytest.approx(2.0)  # augmenting counts
    assert table.loc["baseline", "test std"] == pytest.approx(np.std([0.60, 0.64], ddof=1))
    assert last_eval(runs["baseline"][0])["eval_accuracy"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="baseline"):
        remedy_summary({"augment": runs["augment"]})


def test_plot_lr_sweep_draws_one_curve_per_rate():
    logs = {rate: [{"step": s, "loss": 0.7 - rate * s} for s in range(1, 5)]
            for rate in (1e-5, 1e-4)}
    fig = plot_lr_sweep(logs, {1e-5: 0.6, 1e-4: 0.8})
    assert len(fig.axes[0].lines) == 2 and fig.axes[1].get_xscale() == "log"
