"""The optimizer and the learning-rate schedule of the training loop (chapters 9 and 13)."""

from __future__ import annotations

import torch
from transformers import get_scheduler

_NO_DECAY = ("bias", "layernorm", "layer_norm", "norm.weight")


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decayed weights and non-decayed biases/LayerNorms."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lowered = name.lower()
        (no_decay if any(key in lowered for key in _NO_DECAY) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float):
    """``torch.optim.AdamW`` (``transformers.AdamW`` was removed) with decoupled decay.

    The fused kernel (one pass over all parameters per step) is used when every trainable
    parameter is a floating-point tensor, as it is for these models; it is what
    ``transformers.Trainer`` uses by default too.
    """
    groups = parameter_groups(model, weight_decay)
    fused = all(p.is_floating_point() for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused)


def schedule_lrs(peak_lr: float, warmup_steps: int, num_training_steps: int, steps: int,
                 name: str = "linear") -> list[float]:
    """Learning rate at each of ``steps`` optimizer steps, for a ``name`` schedule sized for
    ``num_training_steps`` (chapter 9 shows what a mis-sized schedule does)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak_lr)
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup_steps,
                              num_training_steps=num_training_steps)
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return rates
