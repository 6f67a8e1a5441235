"""Fine-tune a sentiment classifier end to end (chapter 9; reused by later chapters and the CLI).

``finetune(FinetuneSpec.from_profile("rotten_tomatoes", profile))`` loads the book's splits,
tokenizes them, trains with :func:`llmbook.training.loop.train` using the profile's sizes, evaluates
the best checkpoint on the test split once, and writes everything to a run directory.
Runs are cached in ``runs/`` by configuration (:mod:`llmbook.core.runs`): calling it again with
the same settings loads the finished run instead of training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
from datasets import DatasetDict
from transformers import set_seed

from llmbook import __version__
from llmbook.adaptation.peft_methods import LEARNING_RATES
from llmbook.adaptation.training_data import DataRecipe
from llmbook.core.profiles import Profile
from llmbook.core.runs import Run, cached_run, drop_unset, model_key
from llmbook.data.tokenization import tokenize_dataset
from llmbook.models.adapters import (
    AdapterSpec,
    adapter_bytes,
    check_method,
    count_parameters,
    save_record,
    step_hooks,
)
from llmbook.models.inference import load_for_inference
from llmbook.models.loading import load_classifier, load_tokenizer
from llmbook.training.config import TrainConfig
from llmbook.training.evaluation import evaluate_classifier
from llmbook.training.loop import train

#: Options added after cache version 2, with their defaults (see
#: :func:`llmbook.core.runs.drop_unset`):
#: on the spec itself, and on its :class:`~llmbook.training.config.TrainConfig`.
ADDED_SPEC_OPTIONS: dict = {"method": "full", "rank": 8, "shots_per_class": None,
                            "replay_task": None, "replay_size": 0,
                            "dropout": None, "augment": None, "augment_model": None,
                            "teacher": None, "unlabelled_size": 0, "pseudo_threshold": 0.9}

ADDED_TRAIN_OPTIONS: dict = {"adversarial_epsilon": 0.0}


@dataclass(frozen=True)
class FinetuneSpec:
    """Everything that determines a fine-tuning run (and so its cache key): the task and
    model, the profile's sizes, the training loop's settings, and two composed parts --
    which weights train (:class:`~llmbook.models.adapters.AdapterSpec`, chapter 10) and how
    the training set is made (:class:`~llmbook.adaptation.training_data.DataRecipe`,
    chapters 11-13)."""

    task: str
    model_name: str
    max_length: int
    train_size: int | None
    eval_size: int | None
    train: TrainConfig = field(default_factory=TrainConfig)
    #: hidden and attention dropout of the classifier; None keeps the model's own (chapter 13)
    dropout: float | None = None
    adapter: AdapterSpec = field(default_factory=AdapterSpec)
    data: DataRecipe = field(default_factory=DataRecipe)

    @classmethod
    def from_profile(cls, task: str, profile: Profile, model_name: str | None = None,
                     method: str = "full", rank: int = 8, **train_overrides) -> FinetuneSpec:
        """The profile's sizes and hyper-parameters, with ``train_overrides`` applied.

        A parameter-efficient ``method`` gets its own learning rate
        (:data:`llmbook.adaptation.peft_methods.LEARNING_RATES`) unless ``learning_rate`` is
        overridden.
        """
        learning_rate = (profile.learning_rate if method == "full"
                         else LEARNING_RATES[check_method(method)])
        config = TrainConfig(
            epochs=profile.epochs, batch_size=profile.batch_size,
            eval_batch_size=profile.eval_batch_size, learning_rate=learning_rate,
            progress=True,
        )
        return cls(task=task, model_name=model_name or profile.model_name,
                   max_length=profile.max_length, train_size=profile.train_size,
                   eval_size=profile.eval_size, train=replace(config, **train_overrides),
                   adapter=AdapterSpec(method, rank))

    def total_steps(self, train_examples: int) -> int:
        """Optimizer steps the run will take on ``train_examples`` examples."""
        config = self.train
        per_epoch = math.ceil(math.ceil(train_examples / config.batch_size)
                              / config.gradient_accumulation_steps)
        return config.max_steps or per_epoch * config.epochs

    def cache_config(self) -> dict:
        """The spec as a dict, minus settings that do not change the result.

        The composed parts are flattened into it (``method``, ``rank``, ``augment``, ...), as
        the spec's options were stored before they were grouped: the keys of the runs in the
        cache did not change.
        """
        flat = {name: value for name, value in asdict(self).items()
                if name not in ("adapter", "data")}
        flat |= asdict(self.adapter) | asdict(self.data)
        spec = drop_unset(flat, ADDED_SPEC_OPTIONS)
        spec["train"] = drop_unset(self.train.result_fields(), ADDED_TRAIN_OPTIONS)
        for name in ("model_name", "augment_model", "teacher"):
            if spec.get(name) is not None:
                spec[name] = model_key(spec[name])
        return {"llmbook": __version__, **spec}


def finetune(spec: FinetuneSpec, out: str | Path | None = None, force: bool = False,
             resume: bool = True) -> Run:
    """Train (or load from the ``runs/`` cache) the run described by ``spec``.

    ``out`` overrides the cache directory.  ``force`` retrains even when a finished run exists.
    ``resume`` continues an interrupted run of the same spec from its checkpoint
    (:func:`llmbook.core.runs.cached_run`).
    """
    key = spec.cache_config()
    return cached_run("finetune", key, lambda directory: _train_run(spec, directory), out,
                      force, loader=load_for_inference, resume=resume)


def prepare_splits(spec: FinetuneSpec) -> tuple[DatasetDict, float]:
    """The spec's splits as its data recipe makes them, and the seconds augmentation took."""
    return spec.data.build(spec.task, spec.train_size, spec.eval_size,
                           model_name=spec.model_name, seed=spec.train.seed)


def build_model(spec: FinetuneSpec, train_examples: int):
    """The classifier to train: the spec's model with its dropout, adapted by its method."""
    set_seed(spec.train.seed)
    model = load_classifier(num_labels=2, name=spec.model_name, dropout=spec.dropout)
    return spec.adapter.apply(model, total_steps=spec.total_steps(train_examples))


def _train_run(spec: FinetuneSpec, directory: Path) -> dict:
    """Prepare the data, build the model, train into ``directory``, evaluate on test once."""
    splits, augment_seconds = prepare_splits(spec)
    tokenizer = load_tokenizer(spec.model_name)
    tokenizer.model_max_length = spec.max_length  # saved with the model: inference truncates alike
    used = ("train", "validation") if spec.data.has_validation else ("train",)
    encoded = {name: tokenize_dataset(splits[name], tokenizer, spec.max_length) for name in used}
    model = build_model(spec, len(splits["train"]))
    if not spec.adapter.is_full:
        directory.mkdir(parents=True, exist_ok=True)
        save_record(directory, spec.adapter.method, spec.model_name)
    train(model, tokenizer, encoded["train"], encoded.get("validation"),
          replace(spec.train, output_dir=str(directory)), step_hooks=step_hooks(model))
    test_metrics, _ = evaluate_classifier(model, tokenizer, splits["test"], spec.max_length,
                                          spec.train.eval_batch_size)
    trainable, total = count_parameters(model)
    return dict(test=test_metrics, train_examples=len(splits["train"]),
                augment_seconds=augment_seconds, trainable_parameters=trainable,
                total_parameters=total, weights_bytes=adapter_bytes(directory))


def finetune_seeds(spec: FinetuneSpec, seeds: Sequence[int]) -> list[Run]:
    """The run of ``spec`` once per seed (head initialisation, data order, dropout)."""
    return [finetune(replace(spec, train=replace(spec.train, seed=seed))) for seed in seeds]


def seed_summary(runs_by_model: dict[str, list[Run]]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of validation and test accuracy, per model."""
    rows = [{"model": name, "validation accuracy": run.metrics["best_validation"]["accuracy"],
             "test accuracy": run.test_metrics["accuracy"]}
            for name, runs in runs_by_model.items() for run in runs]
    table = pd.DataFrame(rows)
    return table.groupby("model", sort=False)[["validation accuracy", "test accuracy"]].agg(
        ["mean", "std"])
