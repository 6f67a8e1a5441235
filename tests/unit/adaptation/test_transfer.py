"""The tweets task, rehearsal and the continual-learning bookkeeping (chapter 12)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from llmbook.adaptation import DataRecipe, FinetuneSpec, finetune, forgetting, task_spec
from llmbook.core import get_profile
from llmbook.data import load_sentiment


@pytest.fixture(scope="module")
def tweets():
    return load_sentiment("tweets")


def test_tweets_task_is_balanced_and_its_splits_disjoint(tweets):
    for split in tweets.values():
        assert np.mean(split["label"]) == pytest.approx(0.5, abs=0.01)
    ids = [set(split["idx"]) for split in tweets.values()]
    assert all(not (a & b) for i, a in enumerate(ids) for b in ids[i + 1:])
    assert (len(tweets["validation"]), len(tweets["test"])) == (1_000, 2_000)


def test_rehearsal_mixes_the_replay_buffer_into_training(tmp_path):
    profile = get_profile("smoke")
    spec = FinetuneSpec.from_profile("tweets", profile, epochs=1)
    with_replay = replace(spec, data=DataRecipe(replay_task="imdb", replay_size=16))
    run = finetune(with_replay, out=tmp_path)
    assert run.metrics["train_examples"] == profile.train_size + 16


def test_task_spec_uses_the_chapter_sizes():
    profile = get_profile("cpu")
    spec = task_spec(profile, "imdb", method="lora")
    assert (spec.train_size, spec.eval_size) == (profile.task_train_size, profile.task_eval_size)
    assert spec.adapter.method == "lora" and spec.train.epochs == 2


def test_forgetting_is_the_drop_between_stages():
    stages = pd.DataFrame({"strategy": ["a", "a", "b", "b"], "stage": [1, 2, 1, 2],
                           "task": ["IMDb"] * 4, "accuracy": [0.9, 0.6, 0.9, 0.85]})
    assert forgetting(stages, "IMDb").round(3).to_dict() == {"a": 0.3, "b": 0.05}
