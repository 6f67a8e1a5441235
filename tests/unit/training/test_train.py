"""The shared training loop, on a tiny random BERT and a learnable toy task."""

import json
import math
import random

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    set_seed,
)

from llmbook.data import tokenize_dataset
from llmbook.models import load_tokenizer
from llmbook.training import LengthGroupedBatchSampler, TrainConfig, parameter_groups, train

FILLER = "the a movie film plot actor scene story was is it this".split()


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def toy_dataset(tokenizer, n, seed):
    """Label 1 iff the text contains 'good' (else 'bad'), amid random filler of random length."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 12))]
        words.insert(rng.randint(0, len(words)), "good" if i % 2 else "bad")
        texts.append(" ".join(words))
        labels.append(i % 2)
    ds = Dataset.from_dict({"idx": list(range(n)), "text": texts, "label": labels})
    return tokenize_dataset(ds, tokenizer, max_length=32)


def tiny_model(tokenizer, seed=0):
    set_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2,
    )
    return BertForSequenceClassification(config)


def config(**overrides):
    defaults = dict(epochs=3, batch_size=16, eval_batch_size=64, learning_rate=3e-3,
                    log_every=1, progress=False, warmup_ratio=0.1)
    return TrainConfig(**{**defaults, **overrides})


@pytest.fixture(scope="module")
def data(tokenizer):
    return toy_dataset(tokenizer, 192, seed=0), toy_dataset(tokenizer, 64, seed=1)


def test_loss_falls_and_task_is_learned(tokenizer, data):
    model = tiny_model(tokenizer)
    result = train(model, tokenizer, *data, config(epochs=8))
    losses = [row["loss"] for row in result.train_log]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert result.best_metrics["accuracy"] >= 0.95
    assert result.examples_per_second > 0


def test_scheduler_is_sized_in_optimizer_steps(tokenizer, data):
    cfg = config(epochs=2, gradient_accumulation_steps=3, warmup_ratio=0.25)
    result = train(tiny_model(tokenizer), tokenizer, *data, cfg)
    expected = 2 * math.ceil(math.ceil(192 / 16) / 3)  # 12 micro-batches -> 4 steps per epoch
    assert result.total_steps == expected == len(result.train_log)
    lrs = [row["lr"] for row in result.train_log]
    warmup = round(0.25 * expected)
    assert lrs[warmup - 1] == pytest.approx(cfg.learning_rate)  # peak right after warm-up
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)  # linear decay reaches zero at the end
    assert all(a <= b for a, b in zip(lrs[:warmup], lrs[1:warmup], strict=False))


def test_gradient_accumulation_matches_a_larger_batch(tokenizer, data):
    train_data, eval_data = data
    weights = []
    for batch_size, accumulation in [(16, 1), (8, 2)]:
        model = tiny_model(tokenizer)
        cfg = config(epochs=1, max_steps=1, batch_size=batch_size, group_by_length=False,
                     gradient_accumulation_steps=accumulation, warmup_ratio=0.0)
        train(model, tokenizer, train_data, eval_data, cfg)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=1e-4, atol=1e-6)


def test_early_stopping_stops(tokenizer, data):
    # with a zero learning rate nothing improves after the first evaluation
    cfg = config(epochs=5, learning_rate=0.0, eval_every=2, early_stopping_patience=2)
    result = train(tiny_model(tokenizer), tokenizer, *data, cfg)
    assert result.stopped_early
    assert len(result.eval_log) == 3 and result.eval_log[-1]["step"] == 6
    assert result.best_step == 2


def assert_reloads_with_identical_logits(model, tokenizer, directory):
    reloaded = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    batch = tokenizer(["a good movie", "bad plot"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reloaded(**batch).logits)


def test_best_checkpoint_reloads_with_identical_logits(tokenizer, data, tmp_path):
    model = tiny_model(tokenizer)
    result = train(model, tokenizer, *data, config(epochs=2, output_dir=str(tmp_path)))
    assert (tmp_path / "model.safetensors").exists()
    assert (tmp_path / "tokenizer.json").exists() or (tmp_path / "vocab.txt").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["best_validation"]["accuracy"] == result.best_metrics["accuracy"]
    assert_reloads_with_identical_logits(model, tokenizer, tmp_path)


def test_without_eval_set_the_final_weights_are_saved(tokenizer, data, tmp_path):
    train_data, _ = data
    model = tiny_model(tokenizer)
    result = train(model, tokenizer, train_data, None, config(epochs=2, output_dir=str(tmp_path)))
    assert result.eval_log == [] and result.best_metrics == {}
    assert not (tmp_path / "checkpoint").exists()  # finished: nothing left to resume
    assert_reloads_with_identical_logits(model, tokenizer, tmp_path)
    with pytest.raises(ValueError, match="early stopping"):
        train(model, tokenizer, train_data, None, config(early_stopping_patience=1))


def test_short_runs_skip_the_resumable_checkpoint(tokenizer, data, tmp_path):
    checkpoint_seen = {}
    for minimum in (60.0, 0.0):  # the tiny run trains for well under a minute
        out = tmp_path / str(minimum)

        def look(_step, _model, out=out, minimum=minimum):
            checkpoint_seen.setdefault(minimum, []).append((out / "checkpoint").exists())

        train(tiny_model(tokenizer), tokenizer, *data,
              config(epochs=2, eval_every=3, output_dir=str(out), checkpoint_min_seconds=minimum),
              step_hooks=[look])
    assert not any(checkpoint_seen[60.0]) and any(checkpoint_seen[0.0])


class Interrupt(Exception):
    pass


def test_resume_continues_the_same_schedule(tokenizer, data, tmp_path):
    cfg = dict(epochs=2, eval_every=3, checkpoint_min_seconds=0)
    straight = tiny_model(tokenizer)
    reference = train(straight, tokenizer, *data, config(**cfg, output_dir=str(tmp_path / "a")))

    def crash_at_step_8(step, _model):
        if step == 8:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tiny_model(tokenizer), tokenizer, *data,
              config(**cfg, output_dir=str(tmp_path / "b")), step_hooks=[crash_at_step_8])
    resumed_model = tiny_model(tokenizer, seed=123)  # weights come from the checkpoint
    resumed = train(resumed_model, tokenizer, *data,
                    config(**cfg, output_dir=str(tmp_path / "b"), resume=True))
    assert [r["step"] for r in resumed.train_log] == [r["step"] for r in reference.train_log]
    assert [r["lr"] for r in resumed.train_log] == pytest.approx(
        [r["lr"] for r in reference.train_log])
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(value, resumed_model.state_dict()[key], rtol=1e-4, atol=1e-5)


def test_a_checkpoint_of_another_configuration_is_refused_and_a_swap_cut_short_resumes(
        tokenizer, data, tmp_path):
    cfg = dict(epochs=2, eval_every=3, checkpoint_min_seconds=0, output_dir=str(tmp_path))

    def crash_at_step_8(step, _model):
        if step == 8:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tiny_model(tokenizer), tokenizer, *data, config(**cfg), step_hooks=[crash_at_step_8])
    with pytest.raises(ValueError, match=r"another training configuration \(learning_rate: "):
        train(tiny_model(tokenizer), tokenizer, *data, config(**cfg, learning_rate=1e-3))
    # a kill between the two renames of a checkpoint swap leaves only the previous one
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    resumed = train(tiny_model(tokenizer), tokenizer, *data, config(**cfg))
    assert resumed.resumed_at_step == 6 and resumed.total_steps > 8
    assert not any(p.name.startswith("checkpoint") for p in tmp_path.iterdir())


def test_length_grouping_reduces_padding_and_covers_every_example():
    lengths = np.random.default_rng(0).integers(3, 200, size=1000)
    grouped = LengthGroupedBatchSampler(lengths, 32, group_by_length=True, seed=0)
    plain = LengthGroupedBatchSampler(lengths, 32, group_by_length=False, seed=0)

    def padded_tokens(sampler):
        return sum(len(b) * lengths[b].max() for b in sampler)

    assert sorted(i for b in grouped for i in b) == list(range(1000))
    assert padded_tokens(grouped) < 0.7 * padded_tokens(plain)
    first = list(grouped)
    grouped.set_epoch(1)
    assert list(grouped) != first
    grouped.set_epoch(0)
    assert list(grouped) == first


def test_no_weight_decay_on_biases_and_layernorm(tokenizer):
    decayed, not_decayed = parameter_groups(tiny_model(tokenizer), weight_decay=0.01)
    assert decayed["weight_decay"] == 0.01 and not_decayed["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in not_decayed["params"])
    assert all(p.ndim >= 2 for p in decayed["params"])


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError):
        TrainConfig(warmup_ratio=1.5)


def test_schedule_lrs_matches_the_closed_form():
    from llmbook.training import schedule_lrs

    rates = schedule_lrs(1.0, warmup_steps=2, num_training_steps=10, steps=10)
    expected = [0.0, 0.5] + [(10 - s) / 8 for s in range(2, 10)]
    assert rates == pytest.approx(expected)
