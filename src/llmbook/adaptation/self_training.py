"""Self-training (the chapter on learning from unlabelled data): rounds of teacher and student.

Round 0 is the plain fine-tuning run of a spec (gold labels only).  In every later round the
previous round's model is the teacher: it labels the unlabelled pool
(:mod:`llmbook.adaptation.pseudo_labels`), and a new student -- trained from the same
pre-trained model, not from the teacher -- learns from the gold labels plus the confident
pseudo-labels under noise: dropout, and whatever the spec adds (its data recipe's augmentation,
the R-Drop consistency term of its training config).  Xie et al. (2020), "Self-training with
Noisy Student improves ImageNet classification", is the recipe; every round is a cached
fine-tuning run, so a chapter and ``llmbook finetune --self-train`` share them.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from llmbook.adaptation.finetune import FinetuneSpec, finetune
from llmbook.core.runs import Run


def student_spec(spec: FinetuneSpec, teacher: Run, unlabelled_size: int,
                 threshold: float) -> FinetuneSpec:
    """``spec`` with ``teacher``'s confident labels of ``unlabelled_size`` pool sentences
    added to its training set."""
    return replace(spec, data=replace(spec.data, teacher=str(teacher.model_dir),
                                      unlabelled_size=unlabelled_size,
                                      pseudo_threshold=threshold))


def self_training_rounds(spec: FinetuneSpec, rounds: int, unlabelled_size: int,
                         threshold: float, force: bool = False) -> list[Run]:
    """The runs of rounds ``0..rounds``: ``spec`` itself, then each round's student."""
    if rounds < 1:
        raise ValueError(f"self-training takes at least one round, got {rounds}")
    runs = [finetune(spec, force=force)]
    for _ in range(rounds):
        runs.append(finetune(student_spec(spec, runs[-1], unlabelled_size, threshold),
                             force=force))
    return runs


def rounds_table(runs: list[Run]) -> pd.DataFrame:
    """One row per round: training examples (gold and pseudo-labelled), validation and test
    accuracy, training seconds."""
    gold = runs[0].metrics["train_examples"]
    return pd.DataFrame([{
        "round": number, "pseudo-labelled": run.metrics["train_examples"] - gold,
        "validation accuracy": run.metrics["best_validation"]["accuracy"],
        "test accuracy": run.test_metrics["accuracy"],
        "train seconds": run.metrics["train_seconds"]} for number, run in enumerate(runs)])
