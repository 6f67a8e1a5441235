"""Small helpers every chapter uses: offline mode, a timer (seeding is
`transformers.set_seed`) and which process writes when several train together."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass

_HUB_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def is_offline() -> bool:
    """True unless ``LLMBOOK_OFFLINE`` is set to ``0``/``false``/``no``: offline is the default."""
    return os.environ.get("LLMBOOK_OFFLINE", "1").strip().lower() not in {"0", "false", "no"}


def is_main_process() -> bool:
    """True unless this is one of several processes started by ``torchrun`` or ``accelerate
    launch`` (they set ``RANK``) and not the first: the one that writes files and prints."""
    return os.environ.get("RANK", "0") == "0"


def options_given(**options) -> dict:
    """The options a command line set (``None`` means "not given: the profile's default")."""
    return {name: value for name, value in options.items() if value is not None}


def configure_environment() -> None:
    """Point the Hugging Face libraries at local files only (unless ``LLMBOOK_OFFLINE=0``).

    Must run before ``huggingface_hub`` is imported, which reads these variables once; the
    package ``__init__`` calls it.  Progress bars from hub downloads are silenced, because in
    a notebook they spill onto stderr, and so is tqdm's hint to install ipywidgets: our own
    progress bars are plain text.
    """
    if is_offline():
        for name in _HUB_VARIABLES:
            os.environ.setdefault(name, "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", message="IProgress not found")


@dataclass
class Timer:
    """Wall-clock timer used as a context manager: ``with Timer() as t: ...; t.seconds``."""

    seconds: float = 0.0
    _start: float = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
