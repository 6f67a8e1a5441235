"""The ``runs/`` cache: trained artifacts keyed by the configuration that produced them.

Chapters re-use each other's models instead of retraining: a run's directory name is a hash of
its full configuration (task, model, profile sizes, hyper-parameters, seed, library version),
so a changed setting gives a new directory and an unchanged one finds the finished run.
Set ``LLMBOOK_RUNS`` to put the cache elsewhere.

One pattern serves every kind of run (fine-tuning, pre-training, distillation): look the key
up, return the finished :class:`Run`, else build it and record the key (:func:`cached_run`).
Measurements that are not models (the benchmarks) are cached the same way as JSON
(:func:`cached_json`).  Each use, built or reused, is one line of ``runs/ledger.jsonl``
(:mod:`llmbook.core.chapters`: what a chapter costs when it runs alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmbook.core.chapters import record_run_use
from llmbook.core.utils import is_main_process

#: Bump when a change in the library makes earlier runs incomparable.
CACHE_VERSION = 2

#: The record a finished run leaves in its directory (written last, by the training loop).
METRICS_FILE = "metrics.json"


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
    metrics_file = directory / METRICS_FILE
    if not metrics_file.exists() or not any(directory.glob("*.safetensors")):
        return None
    metrics = json.loads(metrics_file.read_text())
    return metrics if metrics.get("spec") == spec else None


@dataclass
class Run:
    """A finished run: where it is, what it measured, and whether it came from the cache.

    ``loader`` turns the directory into ``(tokenizer, model)``: :meth:`load` calls it.
    """

    model_dir: Path
    metrics: dict
    cached: bool
    loader: Callable[[Path], tuple] | None = None

    @property
    def test_metrics(self) -> dict:
        return self.metrics["test"]

    def load(self):
        """``(tokenizer, model)`` of the run's best checkpoint, ready for inference."""
        if self.loader is None:
            raise ValueError(f"no loader for the run in {self.model_dir}")
        return self.loader(self.model_dir)


def cached_run(kind: str, key: dict, build: Callable[[Path], dict], out: str | Path | None = None,
               force: bool = False, loader: Callable[[Path], tuple] | None = None) -> Run:
    """The finished run of ``kind`` with configuration ``key``, built if it is not in the cache.

    ``build(directory)`` trains into ``directory`` (the loop writes ``metrics.json``) and returns
    what to add to that record; the record then gets the ``spec`` and ``run_key`` that make the
    run findable.  ``out`` overrides the cache directory; ``force`` rebuilds a finished run.
    """
    directory = Path(out) if out else run_dir(kind, key)
    finished = None if force else finished_metrics(directory, key)
    if finished is not None:
        if is_main_process():
            record_run_use(runs_root(), kind, config_key(key), built=False, seconds=0.0)
        return Run(directory, finished, cached=True, loader=loader)
    started = time.perf_counter()
    added = build(directory)
    metrics = json.loads((directory / METRICS_FILE).read_text())
    metrics.update(spec=key, run_key=config_key(key), **added)
    if is_main_process():  # several processes trained it: one writes (the others read alike)
        record_run_use(runs_root(), kind, config_key(key), built=True,
                       seconds=time.perf_counter() - started)
        _replace_text(directory / METRICS_FILE, json.dumps(metrics, indent=2))
    return Run(directory, metrics, cached=False, loader=loader)


def _replace_text(path: Path, text: str) -> None:
    """Write ``path`` at once (through a temporary file): a reader sees the old or the new."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def cached_json(kind: str, key: dict, compute: Callable[[], object], refresh: bool = False):
    """``compute()`` (JSON-serialisable), stored once in ``runs/`` under ``kind`` and ``key``."""
    results = run_dir(kind, key) / "results.json"
    if results.exists() and not refresh:
        record_run_use(runs_root(), kind, config_key(key), built=False, seconds=0.0)
        return json.loads(results.read_text())
    started = time.perf_counter()
    value = compute()
    record_run_use(runs_root(), kind, config_key(key), built=True,
                   seconds=time.perf_counter() - started)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(value, indent=2))
    return value
