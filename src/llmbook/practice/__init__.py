"""Training practice (chapter 9): recipes run over seeds and their summaries."""

from llmbook.practice.recipes import (
    last_eval,
    remedy_summary,
    run_seconds,
)

__all__ = [
    "last_eval",
    "remedy_summary",
    "run_seconds",
]
