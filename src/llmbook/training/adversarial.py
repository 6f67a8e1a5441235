"""Adversarial training with the fast gradient method, FGM (chapter 13)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def adversarial_backward(model, batch: dict, epsilon: float, backward: Callable,
                         embeddings: torch.nn.Parameter | None = None) -> torch.Tensor:
    """FGM (Miyato et al., 2017): add the gradients of the loss at adversarially perturbed
    word embeddings to those already accumulated from the clean loss.

    The perturbation is ``epsilon * g / ||g||`` with ``g`` the gradient of the clean loss with
    respect to the word-embedding matrix (call this after the clean ``backward``).  The matrix
    is restored bit for bit afterwards, from a copy.  ``embeddings`` defaults to the model's
    input-embedding weight (pass it when ``model`` is wrapped, e.g. by accelerate).
    Returns the adversarial loss.
    """
    if embeddings is None:
        embeddings = model.get_input_embeddings().weight
    if not embeddings.requires_grad or embeddings.grad is None:
        raise ValueError("FGM needs trainable word embeddings with a gradient from the clean "
                         "loss: call backward on it first (and do not freeze the embeddings)")
    norm = embeddings.grad.norm()
    clean = embeddings.detach().clone()
    with torch.no_grad():
        if torch.isfinite(norm) and norm > 0:
            embeddings.add_(epsilon * embeddings.grad / norm)
    try:
        adversarial_loss = model(**batch).loss
        backward(adversarial_loss)
    finally:
        with torch.no_grad():
            embeddings.copy_(clean)
    return adversarial_loss.detach()
