"""Training practice (chapter 13): recipes run over seeds and their summaries."""

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
