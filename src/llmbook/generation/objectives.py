"""Masked-LM and causal-LM side by side (part "Generative models", chapter "Next-token
pre-training").

Chapter 4's BERT and this part's GPT-2 are trained on the same IMDb pool, for the same number
of steps of the same batch size, with the same vocabulary size and sequence length.  What
differs is the objective, and with it two things measured here on the same reviews:

* :func:`objective_batches` -- one training batch of each kind, so that the *prediction
  targets* per sequence can be counted: masked-LM learns from the ~15 % of positions it
  masks, causal-LM from every position after the first;
* :func:`training_step_seconds` -- the cost of a training step (forward, backward, optimizer
  update) for each model on its batch, timed alternately in one run so both see the same
  machine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
from datasets import Dataset

from llmbook.generation.causal_lm import IGNORE_INDEX
from llmbook.generation.pretraining import CausalCollator, tokenize_for_clm
from llmbook.pretraining.masking import MaskingCollator, tokenize_for_mlm


def objective_batches(texts: Sequence[str], mlm_tokenizer, clm_tokenizer, max_length: int,
                      seed: int = 0) -> dict[str, dict]:
    """``{"masked-LM": batch, "causal-LM": batch}`` for the same ``texts``, each built the way
    its pre-training run builds it (random 80/10/10 masks seeded by ``seed``; next tokens)."""
    data = Dataset.from_dict({"text": list(texts)})
    mlm = tokenize_for_mlm(data, mlm_tokenizer, max_length)
    clm = tokenize_for_clm(data, clm_tokenizer, max_length)
    return {"masked-LM": MaskingCollator(mlm_tokenizer, seed=seed)(list(mlm)),
            "causal-LM": CausalCollator(clm_tokenizer.eos_token_id)(list(clm))}


def prediction_targets(batch: Mapping, objective: str) -> int:
    """Positions of ``batch`` that carry a loss: the masked ones (masked-LM) or every real
    token but the first of each sequence (causal-LM, whose labels are shifted by one)."""
    labels = batch["labels"]
    if objective == "causal-LM":
        labels = labels[:, 1:]
    elif objective != "masked-LM":
        raise ValueError(f"objective is 'masked-LM' or 'causal-LM', not {objective!r}")
    return int((labels != IGNORE_INDEX).sum())


def _one_step(model, batch, optimizer) -> None:
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def training_step_seconds(runs: Mapping[str, tuple], repeats: int = 5) -> dict[str, float]:
    """Median seconds of one training step for each ``name: (model, batch)``.

    The models take turns (A B A B ...) after one untimed warm-up step each, with AdamW as
    in the book's loop; the models' weights change, so pass copies you no longer need.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4)
                  for name, (model, _) in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats + 1):
        for name, (model, batch) in runs.items():
            model.train()
            start = time.perf_counter()
            _one_step(model, batch, optimizers[name])
            if round_:  # the first round warms up
                times[name].append(time.perf_counter() - start)
    return {name: float(torch.tensor(values).median()) for name, values in times.items()}
