"""Training practice (chapter 13): the practice recipe, recipes run over seeds and their
summaries."""

from llmbook.practice.recipes import (
    final_loss,
    last_eval,
    loss_drop,
    practice_spec_for,
    remedy_summary,
    run_seconds,
)

__all__ = [
    "final_loss",
    "last_eval",
    "loss_drop",
    "practice_spec_for",
    "remedy_summary",
    "run_seconds",
]
