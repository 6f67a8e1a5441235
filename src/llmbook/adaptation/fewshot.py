"""Few-shot learning curves (chapter 11): k labelled reviews per class, several seeds.

Three learners see exactly the same k-shot sets (:func:`llmbook.data.corpora.sample_per_class`):
a logistic-regression probe on frozen MiniLM embeddings, LoRA, and full fine-tuning, both
through :func:`llmbook.adaptation.finetune.finetune` (so every run is cached in ``runs/``).
Few-shot
runs have no real validation set to select on, so they train a fixed budget of steps and
keep the final weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from llmbook.adaptation.baselines import LinearProbe
from llmbook.adaptation.finetune import FinetuneSpec, finetune
from llmbook.adaptation.training_data import DataRecipe
from llmbook.core.profiles import Profile
from llmbook.data.corpora import load_sentiment, sample_per_class, subsample
from llmbook.training.evaluation import classification_metrics

TASK = "rotten_tomatoes"

BATCH_SIZE = 16

EPOCHS = 4


def few_shot_spec(profile: Profile, k: int, seed: int, method: str = "full") -> FinetuneSpec:
    """``k`` examples per class, ``EPOCHS`` epochs but at least ``few_shot_min_steps`` steps,
    with no validation pass: the final weights are the model, tested once."""
    batch_size = min(BATCH_SIZE, 2 * k)
    steps = max(profile.few_shot_min_steps, EPOCHS * math.ceil(2 * k / batch_size))
    spec = FinetuneSpec.from_profile(TASK, profile, method=method, seed=seed,
                                     batch_size=batch_size, max_steps=steps, eval_every=steps)
    return replace(spec, data=DataRecipe(shots_per_class=k))


def fine_tuning_curve(profile: Profile, method: str, ks: Sequence[int] | None = None,
                      seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Test accuracy of ``method`` for every k and seed: columns learner, k, seed, accuracy."""
    rows = []
    for k in ks or profile.few_shot_ks:
        for seed in seeds or profile.few_shot_seeds:
            run = finetune(few_shot_spec(profile, k, seed, method))
            rows.append({"learner": method, "k": k, "seed": seed,
                         "accuracy": run.test_metrics["accuracy"],
                         "train seconds": run.metrics["train_seconds"]})
    return pd.DataFrame(rows)


def probe_curve(profile: Profile, ks: Sequence[int] | None = None,
                seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """The same table for a linear probe on frozen embeddings, fitted on the same k-shot sets."""
    splits = load_sentiment(TASK)
    pool = subsample(splits["train"], profile.train_size)
    test = splits["test"] if profile.eval_size is None else subsample(splits["test"],
                                                                      profile.eval_size)
    probe = LinearProbe(model_name=profile.model_name, max_length=profile.max_length,
                        batch_size=profile.eval_batch_size)
    rows = []
    for k in ks or profile.few_shot_ks:
        for seed in seeds or profile.few_shot_seeds:
            shots = sample_per_class(pool, k, seed)
            probe.fit(list(shots["text"]), list(shots["label"]))
            predictions = probe.predict(list(test["text"]))
            rows.append({"learner": "linear probe", "k": k, "seed": seed,
                         "accuracy": classification_metrics(test["label"],
                                                            predictions)["accuracy"]})
    return pd.DataFrame(rows)


def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of accuracy over seeds, one row per learner and k."""
    return (curves.groupby(["learner", "k"], sort=False)["accuracy"]
            .agg(["mean", "std"]).reset_index())
