"""Consistency training, R-Drop style (the chapter on learning from unlabelled data).

The same batch goes through the model twice in training mode, so dropout gives two different
networks; besides the cross-entropy of both passes, the loss penalises their disagreement, the
symmetric KL divergence between the two predicted distributions (Liang et al., 2021, "R-Drop:
Regularized Dropout for Neural Networks").  With pseudo-labelled data it is the "noise" half of
noisy-student self-training: the student must give the same answer under perturbation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symmetric_kl(first_logits: torch.Tensor, second_logits: torch.Tensor) -> torch.Tensor:
    """``(KL(p || q) + KL(q || p)) / 2`` between the softmaxes of two logit tensors, averaged
    over the batch; zero when they agree."""
    p = F.log_softmax(first_logits.float(), dim=-1)
    q = F.log_softmax(second_logits.float(), dim=-1)
    return 0.5 * (F.kl_div(q, p, log_target=True, reduction="batchmean")
                  + F.kl_div(p, q, log_target=True, reduction="batchmean"))


def rdrop_loss(model, batch: dict, weight: float, first=None) -> torch.Tensor:
    """The mean cross-entropy of two forward passes of ``batch`` plus ``weight`` times their
    :func:`symmetric_kl`.  ``first`` is the first pass's output when the caller has it.

    The model must be in training mode (otherwise both passes are the same network and the
    KL term is zero); the batch must carry labels.
    """
    if weight < 0:
        raise ValueError(f"the consistency weight must be >= 0, got {weight}")
    first = first if first is not None else model(**batch)
    second = model(**batch)
    cross_entropy = (first.loss + second.loss) / 2
    return cross_entropy + weight * symmetric_kl(first.logits, second.logits)
