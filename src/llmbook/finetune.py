"""Fine-tune a sentiment classifier end to end (chapter 4; reused by later chapters and the CLI).

``finetune(FinetuneSpec.from_profile("rotten_tomatoes", profile))`` loads the book's splits,
tokenizes them, trains with :func:`llmbook.train.train` using the profile's sizes, evaluates
the best checkpoint on the test split once, and writes everything to a run directory.
Runs are cached in ``runs/`` by configuration (:mod:`llmbook.runs`): calling it again with
the same settings loads the finished run instead of training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from llmbook import __version__
from llmbook.data import limit_sizes, load_sentiment
from llmbook.evaluate import evaluate_classifier, load_for_inference
from llmbook.models import load_classifier, load_tokenizer
from llmbook.profiles import Profile
from llmbook.runs import config_key, drop_unset, finished_metrics, run_dir
from llmbook.tokenization import tokenize_dataset
from llmbook.train import METRICS_FILE, TrainConfig, train
from llmbook.utils import set_seed


#: Options added after cache version 2, with their defaults (see :func:`llmbook.runs.drop_unset`):
#: on the spec itself, and on its :class:`~llmbook.train.TrainConfig`.
ADDED_SPEC_OPTIONS: dict = {}
ADDED_TRAIN_OPTIONS: dict = {}


@dataclass(frozen=True)
class FinetuneSpec:
    """Everything that determines a fine-tuning run (and so its cache key)."""

    task: str
    model_name: str
    max_length: int
    train_size: int | None
    eval_size: int | None
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_profile(cls, task: str, profile: Profile, model_name: str | None = None,
                     **train_overrides) -> FinetuneSpec:
        """The profile's sizes and hyper-parameters, with ``train_overrides`` applied."""
        config = TrainConfig(
            epochs=profile.epochs, batch_size=profile.batch_size,
            eval_batch_size=profile.eval_batch_size, learning_rate=profile.learning_rate,
            progress=True,
        )
        return cls(task=task, model_name=model_name or profile.model_name,
                   max_length=profile.max_length, train_size=profile.train_size,
                   eval_size=profile.eval_size, train=replace(config, **train_overrides))

    def cache_config(self) -> dict:
        """The spec as a dict, minus settings that do not change the result."""
        spec = drop_unset(asdict(self), ADDED_SPEC_OPTIONS)
        spec["train"] = drop_unset(spec["train"], ADDED_TRAIN_OPTIONS)
        for key in ("output_dir", "resume", "progress", "log_every"):
            spec["train"].pop(key)
        model = Path(self.model_name)
        if model.is_dir() and (model / METRICS_FILE).exists():
            # a locally trained model: key on its own run record, not on its path
            spec["model_name"] = json.loads((model / METRICS_FILE).read_text()).get("run_key",
                                                                                   str(model))
        return {"llmbook": __version__, **spec}


@dataclass
class FinetuneRun:
    """A finished run: where it is and what it measured."""

    model_dir: Path
    metrics: dict
    cached: bool

    @property
    def test_metrics(self) -> dict:
        return self.metrics["test"]

    def load(self):
        """``(tokenizer, model)`` of the best checkpoint, ready for inference."""
        return load_for_inference(self.model_dir)


def finetune(spec: FinetuneSpec, out: str | Path | None = None, force: bool = False
             ) -> FinetuneRun:
    """Train (or load from the ``runs/`` cache) the run described by ``spec``.

    ``out`` overrides the cache directory.  ``force`` retrains even when a finished run exists.
    """
    key_config = spec.cache_config()
    directory = Path(out) if out else run_dir("finetune", key_config)
    finished = None if force else finished_metrics(directory, key_config)
    if finished is not None:
        return FinetuneRun(directory, finished, cached=True)

    splits = limit_sizes(load_sentiment(spec.task), spec.train_size, spec.eval_size)
    tokenizer = load_tokenizer(spec.model_name)
    tokenizer.model_max_length = spec.max_length  # saved with the model: inference truncates alike
    encoded = {name: tokenize_dataset(ds, tokenizer, spec.max_length)
               for name, ds in splits.items()}
    set_seed(spec.train.seed)
    model = load_classifier(num_labels=2, name=spec.model_name)
    config = replace(spec.train, output_dir=str(directory))
    train(model, tokenizer, encoded["train"], encoded["validation"], config)

    test_metrics, _ = evaluate_classifier(model, tokenizer, splits["test"], spec.max_length,
                                          spec.train.eval_batch_size)
    metrics = json.loads((directory / METRICS_FILE).read_text())
    metrics.update(spec=key_config, run_key=config_key(key_config), test=test_metrics,
                   train_examples=len(splits["train"]))
    (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    return FinetuneRun(directory, metrics, cached=False)


def finetune_seeds(spec: FinetuneSpec, seeds: Sequence[int]) -> list[FinetuneRun]:
    """The run of ``spec`` once per seed (head initialisation, data order, dropout)."""
    return [finetune(replace(spec, train=replace(spec.train, seed=seed))) for seed in seeds]


def seed_summary(runs_by_model: dict[str, list[FinetuneRun]]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of validation and test accuracy, per model."""
    rows = [{"model": name, "validation accuracy": run.metrics["best_validation"]["accuracy"],
             "test accuracy": run.test_metrics["accuracy"]}
            for name, runs in runs_by_model.items() for run in runs]
    table = pd.DataFrame(rows)
    return table.groupby("model", sort=False)[["validation accuracy", "test accuracy"]].agg(
        ["mean", "std"])
