"""Transfer across domains and continual learning (chapter 12).

* :func:`transfer_matrix` -- train on one task, test on every task: IMDb reviews, Rotten
  Tomatoes snippets and (out of domain) tweets.
* :func:`continual_learning` -- learn a first task, then a second, and measure forgetting of
  the first under three strategies: naive sequential fine-tuning, rehearsal (a replay buffer of
  first-task examples mixed into the second stage) and one LoRA adapter per task.

Every training run goes through :func:`llmbook.adaptation.finetune.finetune`, so it is cached in
``runs/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from llmbook.adaptation.finetune import FinetuneSpec, finetune
from llmbook.adaptation.training_data import DataRecipe
from llmbook.core.profiles import Profile
from llmbook.core.runs import Run
from llmbook.data.corpora import load_sentiment, subsample
from llmbook.models.inference import load_for_inference
from llmbook.training.evaluation import evaluate_classifier

TASK_LABELS = {"imdb": "IMDb", "rotten_tomatoes": "Rotten Tomatoes", "tweets": "tweets"}

#: Epochs of every run in the chapter (2 keeps the chapter within its time budget).
EPOCHS = 2

#: Share of the first task's training examples kept in the rehearsal buffer.
REPLAY_SHARE = 0.2


def task_spec(profile: Profile, task: str, **options) -> FinetuneSpec:
    """Fine-tuning on ``task`` with the chapter's sizes; ``options`` go to ``from_profile``."""
    spec = FinetuneSpec.from_profile(task, profile, epochs=EPOCHS, **options)
    return replace(spec, train_size=profile.task_train_size, eval_size=profile.task_eval_size)


def test_sets(profile: Profile, tasks: Sequence[str]) -> dict:
    """Each task's test split, cut to the profile's ``task_eval_size``."""
    return {task: subsample(load_sentiment(task)["test"], profile.task_eval_size)
            for task in tasks}


def accuracies(run: Run, tests: dict, max_length: int) -> dict[str, float]:
    """Test accuracy of the run's model on every test set."""
    tokenizer, model = load_for_inference(run.model_dir)
    return {task: evaluate_classifier(model, tokenizer, data, max_length)[0]["accuracy"]
            for task, data in tests.items()}


def transfer_matrix(profile: Profile, tasks: Sequence[str] = tuple(TASK_LABELS)
                    ) -> pd.DataFrame:
    """Accuracy with rows = task trained on, columns = task tested on."""
    tests = test_sets(profile, tasks)
    rows = {TASK_LABELS[task]: accuracies(finetune(task_spec(profile, task)), tests,
                                          profile.max_length) for task in tasks}
    return pd.DataFrame(rows).T.rename(columns=TASK_LABELS)


def continual_learning(profile: Profile, first: str = "imdb", second: str = "tweets"
                       ) -> pd.DataFrame:
    """Accuracy on both tasks after each stage, for each strategy.

    Columns: strategy, stage (1 = after ``first``, 2 = after ``second``), task, accuracy.
    """
    tests = test_sets(profile, (first, second))
    runs = continual_runs(profile, first, second)
    after_first = accuracies(runs["stage one"], tests, profile.max_length)
    rows = []
    for strategy in ("sequential", "rehearsal"):
        second_run = runs[strategy]
        rows += _rows(strategy, 1, after_first)
        rows += _rows(strategy, 2, accuracies(second_run, tests, profile.max_length))
    # one adapter per task on the frozen base model: task identity picks the adapter
    adapters = {task: finetune(task_spec(profile, task, method="lora")) for task in (first, second)}
    first_adapter = accuracies(adapters[first], tests, profile.max_length)
    second_adapter = accuracies(adapters[second], tests, profile.max_length)
    rows += _rows("LoRA per task", 1, first_adapter)
    rows += _rows("LoRA per task", 2, {first: first_adapter[first],
                                        second: second_adapter[second]})
    return pd.DataFrame(rows)


def continual_runs(profile: Profile, first: str = "imdb", second: str = "tweets"
                   ) -> dict[str, Run]:
    """The cached runs of :func:`continual_learning`: ``"stage one"`` (fine-tuned on
    ``first``), then ``"sequential"`` and ``"rehearsal"`` (both continued on ``second``, the
    latter replaying part of ``first``)."""
    stage_one = finetune(task_spec(profile, first))
    from_first = {"model_name": str(stage_one.model_dir)}
    replay = round(REPLAY_SHARE * (profile.task_train_size or len(load_sentiment(first)["train"])))
    sequential = finetune(task_spec(profile, second, **from_first))
    rehearsal = finetune(replace(task_spec(profile, second, **from_first),
                                 data=DataRecipe(replay_task=first, replay_size=replay)))
    return {"stage one": stage_one, "sequential": sequential, "rehearsal": rehearsal}


def correct_flags(run: Run, data, max_length: int) -> np.ndarray:
    """Per example of ``data``: is the run's model right? (for paired comparisons)"""
    tokenizer, model = load_for_inference(run.model_dir)
    _, predictions = evaluate_classifier(model, tokenizer, data, max_length)
    return predictions["correct"].to_numpy(dtype=bool)


def _rows(strategy: str, stage: int, accuracy: dict[str, float]) -> list[dict]:
    return [{"strategy": strategy, "stage": stage, "task": TASK_LABELS[task], "accuracy": value}
            for task, value in accuracy.items()]


def forgetting(stages: pd.DataFrame, task: str) -> pd.Series:
    """Accuracy lost on ``task`` (its label) between stage 1 and stage 2, per strategy."""
    on_task = stages[stages["task"] == task].pivot(index="strategy", columns="stage",
                                                   values="accuracy")
    return (on_task[1] - on_task[2]).rename("forgetting")
