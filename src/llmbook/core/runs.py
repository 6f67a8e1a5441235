"""The ``runs/`` cache: trained artifacts keyed by the configuration that produced them.

Chapters re-use each other's models instead of retraining: a run's directory name is a hash of
its full configuration (task, model, profile sizes, hyper-parameters, seed, library version),
so a changed setting gives a new directory and an unchanged one finds the finished run.
Set ``LLMBOOK_RUNS`` to put the cache elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: Bump when a change in the library makes earlier runs incomparable.
CACHE_VERSION = 2


def project_root(start: Path | None = None) -> Path | None:
    """Nearest ancestor of ``start`` (default: cwd) holding the book's ``_toc.yml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "pyproject.toml").exists():
            return folder
    return None


def runs_root() -> Path:
    """``$LLMBOOK_RUNS``, else ``runs/`` at the project root, else ``./runs``."""
    if os.environ.get("LLMBOOK_RUNS"):
        return Path(os.environ["LLMBOOK_RUNS"])
    return (project_root() or Path.cwd()) / "runs"


def config_key(config: dict) -> str:
    """Short stable hash of a JSON-serialisable configuration."""
    payload = json.dumps({"cache_version": CACHE_VERSION, **config}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def drop_unset(config: dict, added_options: dict) -> dict:
    """``config`` without the ``added_options`` that still hold their default value.

    Options added to a spec after the runs in the cache were trained enter the key only when
    they are set, so adding an option never invalidates the runs trained before it existed.
    """
    return {k: v for k, v in config.items()
            if not (k in added_options and v == added_options[k])}


def run_dir(kind: str, config: dict) -> Path:
    """Directory of the run of ``kind`` (e.g. ``finetune``) with this configuration."""
    return runs_root() / f"{kind}-{config_key(config)}"


def finished_metrics(directory: Path, spec: dict) -> dict | None:
    """The ``metrics.json`` of the finished run of ``spec`` in ``directory``, else ``None``.

    A run is finished when its weights are written and its metrics record that very spec
    (the record is written last, so an interrupted run never counts as finished).
    """
    directory = Path(directory)
    metrics_file = directory / "metrics.json"
    if not metrics_file.exists() or not any(directory.glob("*.safetensors")):
        return None
    metrics = json.loads(metrics_file.read_text())
    return metrics if metrics.get("spec") == spec else None
