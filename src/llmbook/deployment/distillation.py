"""Distil the fine-tuned classifier into a shallower student (chapter 14).

Removing encoder layers cuts latency about in proportion, but a network with layers simply cut
out has lost the representations the later layers expect.  Knowledge distillation
(Hinton et al., 2015) repairs that: the student -- the teacher itself with some layers dropped,
so it starts close -- is trained to match the teacher's softened class probabilities
(:class:`Distiller`) as well as the gold labels where there are any.  Because the teacher
labels any text, the *transfer set* can be larger than the labeled training set:
:func:`distil` adds sentences cut from unlabeled IMDb reviews
(:func:`llmbook.data.sentences.review_sentences`; the IMDb *train* split only) to the task's
training texts.  The student is then exported and
quantized like any other classifier (:mod:`llmbook.deployment.variants`).

``distil(DistilSpec.from_profile(teacher_dir, "rotten_tomatoes", profile))`` trains (or loads
from the ``runs/`` cache) the student and returns a :class:`~llmbook.adaptation.finetune.Run`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers.modeling_outputs import SequenceClassifierOutput

from llmbook import __version__
from llmbook.adaptation.finetune import model_key
from llmbook.core.profiles import Profile
from llmbook.core.runs import Run, cached_run
from llmbook.core.utils import Timer
from llmbook.data.corpora import limit_sizes, load_corpus, load_sentiment
from llmbook.data.sentences import review_sentences
from llmbook.data.tokenization import tokenize_dataset
from llmbook.models.inference import load_for_inference, predict_proba
from llmbook.training.config import IGNORE_INDEX, TrainConfig
from llmbook.training.loop import train


def encoder_layers(model) -> torch.nn.ModuleList:
    """The list of transformer blocks of a BERT-family classifier."""
    return model.base_model.encoder.layer


def drop_layers(model, keep: Sequence[int]):
    """A copy of ``model`` with only the encoder layers ``keep`` (indices, in order).

    The embeddings, the kept layers and the classification head keep their trained weights;
    ``config.num_hidden_layers`` is updated so the saved student reloads as itself.
    """
    total = len(encoder_layers(model))
    keep = [int(i) for i in keep]
    if not keep or keep != sorted(set(keep)) or keep[0] < 0 or keep[-1] >= total:
        raise ValueError(f"keep must be increasing, distinct layer indices in [0, {total}), "
                         f"got {keep}")
    student = copy.deepcopy(model)
    layers = encoder_layers(student)
    student.base_model.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    student.config.num_hidden_layers = len(keep)
    return student


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """``T**2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch.

    The ``T**2`` factor keeps gradient sizes comparable across temperatures (Hinton et al.).
    """
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                    F.log_softmax(teacher_logits / temperature, dim=-1),
                    reduction="batchmean", log_target=True) * temperature ** 2


class Distiller(torch.nn.Module):
    """Wraps the student for :func:`llmbook.training.loop.train`.

    Transfer-set batches carry ``teacher_logits``: their loss is ``alpha`` times the
    :func:`distillation_loss` plus ``1 - alpha`` times the cross-entropy with the gold
    ``labels`` of the examples that have one (the teacher-labelled sentences have
    :data:`~llmbook.training.config.IGNORE_INDEX`).  Batches with ``labels`` only (the validation
    set) get
    cross-entropy, so the training loop's evaluation and best-checkpoint selection work
    unchanged.  Saving saves the student.
    """

    def __init__(self, student, temperature: float = 2.0, alpha: float = 0.5):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.student, self.temperature, self.alpha = student, temperature, alpha

    def forward(self, input_ids, attention_mask, labels=None, teacher_logits=None):
        logits = self.student(input_ids=input_ids, attention_mask=attention_mask).logits
        labelled = None if labels is None else labels != IGNORE_INDEX
        loss = None
        if teacher_logits is not None:
            loss = self.alpha * distillation_loss(logits, teacher_logits, self.temperature)
            if labelled is not None and labelled.any():
                loss = loss + (1 - self.alpha) * F.cross_entropy(logits[labelled],
                                                                 labels[labelled])
        elif labels is not None:
            loss = F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, directory, **kwargs) -> None:
        self.student.save_pretrained(directory, **kwargs)


@dataclass(frozen=True)
class DistilSpec:
    """Everything that determines a distillation run (and so its cache key)."""

    teacher: str  # model directory of a finished fine-tuning run
    task: str
    keep_layers: tuple[int, ...]
    transfer_size: int  # unlabeled IMDb sentences added to the task's training texts
    max_length: int
    train_size: int | None
    eval_size: int | None
    temperature: float = 2.0
    #: weight of the distillation loss; the rest goes to cross-entropy with gold labels
    alpha: float = 0.5
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_profile(cls, teacher: str | Path, task: str, profile: Profile,
                     **train_overrides) -> DistilSpec:
        """The profile's layers, transfer-set size, epochs and learning rate."""
        config = TrainConfig(epochs=profile.distil_epochs, batch_size=profile.batch_size,
                             eval_batch_size=profile.eval_batch_size,
                             learning_rate=profile.learning_rate)
        return cls(teacher=str(teacher), task=task, keep_layers=tuple(profile.distil_layers),
                   transfer_size=profile.distil_transfer_size, max_length=profile.max_length,
                   train_size=profile.train_size, eval_size=profile.eval_size,
                   train=replace(config, **train_overrides))

    def cache_config(self) -> dict:
        spec = asdict(self)
        spec.update(teacher=model_key(self.teacher), keep_layers=list(self.keep_layers),
                    train=self.train.result_fields())
        return {"llmbook": __version__, **spec}


def transfer_set(spec: DistilSpec, splits, teacher, tokenizer) -> Dataset:
    """The task's training texts (with their gold ``labels``) plus ``spec.transfer_size`` IMDb
    sentences (label :data:`~llmbook.training.config.IGNORE_INDEX`), all with the teacher's logits
    (log-probabilities) as ``teacher_logits``."""
    texts, labels = list(splits["train"]["text"]), list(splits["train"]["label"])
    if spec.transfer_size:
        texts += review_sentences(load_corpus("imdb")["train"]["text"], spec.transfer_size,
                                    seed=spec.train.seed)
        labels += [IGNORE_INDEX] * spec.transfer_size
    probabilities = predict_proba(teacher, tokenizer, texts, spec.max_length,
                                  spec.train.eval_batch_size)
    logits = np.log(np.clip(probabilities, 1e-12, None)).astype(np.float32)
    return Dataset.from_dict({"text": texts, "labels": labels,
                              "teacher_logits": logits.tolist()})


def distil(spec: DistilSpec, out: str | Path | None = None, force: bool = False) -> Run:
    """Train (or load from the ``runs/`` cache) the student described by ``spec``.

    ``out`` overrides the cache directory; ``force`` retrains even when a finished run exists.
    The best evaluation on the task's validation split is kept; the test split is not used.
    """
    key = spec.cache_config()
    return cached_run("distil", key, lambda directory: _distil_run(spec, directory), out,
                      force, loader=load_for_inference)


def _distil_run(spec: DistilSpec, directory: Path) -> dict:
    """Label the transfer set with the teacher, then train the student to match it."""
    tokenizer, teacher = load_for_inference(spec.teacher)
    splits = limit_sizes(load_sentiment(spec.task), spec.train_size, spec.eval_size)
    student = drop_layers(teacher, spec.keep_layers)  # checks the layers before labelling
    with Timer() as labeling:
        transfer = transfer_set(spec, splits, teacher, tokenizer)
    del teacher
    train(Distiller(student, spec.temperature, spec.alpha), tokenizer,
          tokenize_dataset(transfer, tokenizer, spec.max_length),
          tokenize_dataset(splits["validation"], tokenizer, spec.max_length),
          replace(spec.train, output_dir=str(directory)))
    return dict(transfer_examples=len(transfer), teacher_seconds=labeling.seconds,
                layers=len(spec.keep_layers))
