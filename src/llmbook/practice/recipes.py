"""Comparing training recipes over seeds (chapter 13: learning rate, warm-up, overfitting remedies).

Every recipe is a :class:`~llmbook.adaptation.finetune.FinetuneSpec` run once per seed with
:func:`llmbook.adaptation.finetune.finetune_seeds`; :func:`remedy_summary` turns the runs into the
chapter's closing table -- validation and test accuracy (mean ± std over seeds), the gain over
the baseline, and the time cost as a ratio to the baseline's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from llmbook.adaptation.finetune import FinetuneSpec
from llmbook.core.profiles import Profile
from llmbook.core.runs import Run


def practice_spec_for(profile: Profile, task: str = "rotten_tomatoes",
                      **train_overrides) -> FinetuneSpec:
    """The chapter's baseline recipe: the profile's model on its small practice subsets (small
    enough to overfit), at the practice learning rate unless ``train_overrides`` sets one,
    logging every step."""
    train_overrides.setdefault("learning_rate", profile.practice_learning_rate)
    spec = FinetuneSpec.from_profile(task, profile, epochs=profile.practice_epochs,
                                     batch_size=profile.practice_batch_size, log_every=1,
                                     **train_overrides)
    return replace(spec, train_size=profile.practice_train_size,
                   eval_size=profile.practice_eval_size)


def final_loss(run: Run, last: int = 3) -> float:
    """Mean training loss of the ``last`` logged steps (one step's loss is noisy)."""
    return float(np.mean([row["loss"] for row in run.metrics["train_log"][-last:]]))


def loss_drop(run: Run) -> float:
    """How far training loss fell: the first logged step's loss minus :func:`final_loss`."""
    return run.metrics["train_log"][0]["loss"] - final_loss(run)


def run_seconds(run: Run) -> float:
    """Time a run cost: its training steps plus building an augmented training set, if any."""
    return run.metrics["train_seconds"] + run.metrics.get("augment_seconds", 0.0)


def last_eval(run: Run) -> dict:
    """The validation metrics of the last evaluation (the model a run *without* checkpoint
    selection would keep)."""
    return run.metrics["eval_log"][-1]


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation; NaN for a single seed (the smoke profile)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def remedy_summary(runs: Mapping[str, Sequence[Run]], baseline: str = "baseline"
                   ) -> pd.DataFrame:
    """One row per recipe: accuracy mean and std over seeds (best validation checkpoint and
    its test accuracy), gains over ``baseline`` in accuracy points, and time ratio."""
    if baseline not in runs:
        raise ValueError(f"no {baseline!r} among the recipes {list(runs)}")
    rows = []
    for name, seeds in runs.items():
        if not seeds:
            raise ValueError(f"recipe {name!r} has no runs")
        validation = [run.metrics["best_validation"]["accuracy"] for run in seeds]
        test = [run.test_metrics["accuracy"] for run in seeds]
        rows.append({"remedy": name, "seeds": len(seeds),
                     "validation accuracy": float(np.mean(validation)),
                     "validation std": _std(validation),
                     "test accuracy": float(np.mean(test)), "test std": _std(test),
                     "seconds": float(np.mean([run_seconds(run) for run in seeds]))})
    table = pd.DataFrame(rows).set_index("remedy")
    base = table.loc[baseline]
    table["validation gain (points)"] = 100 * (table["validation accuracy"]
                                               - base["validation accuracy"])
    table["test gain (points)"] = 100 * (table["test accuracy"] - base["test accuracy"])
    table["time vs baseline"] = table["seconds"] / base["seconds"]
    return table
