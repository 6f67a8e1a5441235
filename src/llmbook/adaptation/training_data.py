"""How a fine-tuning run's training set is made from its task (chapters 11-13).

A :class:`DataRecipe` is the data half of a :class:`~llmbook.adaptation.finetune.FinetuneSpec`:
starting from the task's splits cut to the profile's sizes, it mixes in examples of an earlier
task (rehearsal, chapter 12), keeps ``k`` examples per class (few-shot, chapter 11), adds the
unlabelled sentences a teacher labels confidently (self-training,
:mod:`llmbook.adaptation.pseudo_labels`) and an augmented copy of every training example
(chapter 13), in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets import DatasetDict, concatenate_datasets

from llmbook.adaptation.pseudo_labels import pseudo_labelled
from llmbook.core.utils import Timer
from llmbook.data.corpora import limit_sizes, load_sentiment, sample_per_class, subsample
from llmbook.training.augmentation import augment_dataset, make_augmenter


@dataclass(frozen=True)
class DataRecipe:
    """The training-set options of a fine-tuning run; the defaults use the split as it is."""

    #: few-shot (chapter 11): this many examples per class, drawn with the run's seed
    shots_per_class: int | None = None
    #: rehearsal (chapter 12): mix ``replay_size`` training examples of ``replay_task`` in
    replay_task: str | None = None
    replay_size: int = 0
    #: augmentation (chapter 13): None, "eda" or "mlm" (:mod:`llmbook.training.augmentation`),
    #: one augmented copy of every training example; "mlm" samples from ``augment_model``
    augment: str | None = None
    augment_model: str | None = None
    #: self-training: a finished run's model directory labels ``unlabelled_size`` IMDb
    #: sentences; those labelled with probability >= ``pseudo_threshold`` join, as many per class
    teacher: str | None = None
    unlabelled_size: int = 0
    pseudo_threshold: float = 0.9

    def __post_init__(self):
        if bool(self.teacher) != (self.unlabelled_size > 0):
            raise ValueError("self-training needs both a teacher and unlabelled_size > 0 "
                             f"(got teacher={self.teacher!r}, "
                             f"unlabelled_size={self.unlabelled_size})")

    @property
    def has_validation(self) -> bool:
        """A few-shot run trains a fixed budget and keeps its final weights: a large
        validation set would not exist in a real few-shot setting, so none is used."""
        return not self.shots_per_class

    def build(self, task: str, train_size: int | None, eval_size: int | None, *,
              model_name: str, seed: int) -> tuple[DatasetDict, float]:
        """The task's splits made by this recipe, and the seconds augmentation took.

        ``model_name`` is the model being fine-tuned (EDA needs none; MLM substitution falls
        back to it when ``augment_model`` is unset).
        """
        splits = limit_sizes(load_sentiment(task), train_size, eval_size)
        if self.replay_task:
            earlier = subsample(load_sentiment(self.replay_task)["train"], train_size)
            splits["train"] = concatenate_datasets([splits["train"],
                                                    subsample(earlier, self.replay_size)])
        if self.shots_per_class:
            splits["train"] = sample_per_class(splits["train"], self.shots_per_class, seed=seed)
        if self.teacher:
            splits["train"] = concatenate_datasets([splits["train"], pseudo_labelled(
                self.teacher, self.unlabelled_size, self.pseudo_threshold)])
        if not self.augment:
            return splits, 0.0
        with Timer() as timer:
            augmenter = make_augmenter(self.augment, model_name, self.augment_model)
            splits["train"] = augment_dataset(splits["train"], augmenter, seed=seed)
        return splits, timer.seconds
