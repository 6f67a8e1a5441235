"""Chapter 13's recipe helpers: the practice baseline spec and the training-loss summaries."""

from dataclasses import replace
from pathlib import Path

import pytest

from llmbook.adaptation import FinetuneSpec
from llmbook.core import Run, get_profile
from llmbook.practice import final_loss, loss_drop, practice_spec_for


def test_practice_spec_is_the_profile_spec_on_the_practice_subsets():
    profile = get_profile("smoke")
    spec = practice_spec_for(profile)
    expected = replace(
        FinetuneSpec.from_profile("rotten_tomatoes", profile,
                                  learning_rate=profile.practice_learning_rate,
                                  epochs=profile.practice_epochs,
                                  batch_size=profile.practice_batch_size, log_every=1),
        train_size=profile.practice_train_size, eval_size=profile.practice_eval_size)
    assert spec == expected and spec.cache_config() == expected.cache_config()
    assert spec.train.learning_rate == profile.practice_learning_rate
    decayed = practice_spec_for(profile, weight_decay=0.1, learning_rate=1e-6)
    assert (decayed.train.weight_decay, decayed.train.learning_rate) == (0.1, 1e-6)
    assert practice_spec_for(profile, "imdb").task == "imdb"


def test_final_loss_averages_the_last_steps_and_loss_drop_starts_from_the_first():
    log = [{"step": step, "loss": loss} for step, loss in enumerate([2.0, 1.0, 0.6, 0.4, 0.2])]
    run = Run(Path("unused"), {"train_log": log}, cached=True)
    assert final_loss(run) == pytest.approx(0.4)
    assert final_loss(run, last=1) == pytest.approx(0.2)
    assert loss_drop(run) == pytest.approx(1.6)
