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

The cache loses nothing and never returns a wrong run: every record is written atomically
(:mod:`llmbook.core.durable`), a run is finished only when ``metrics.json`` holds its spec,
written last; a lock lets one process build a directory while another one that wants the same
run waits and then reuses it; an interrupted run is continued from its checkpoint only if it
was started with the same configuration (``run_started.json``).  A finished run records the
versions and library source it was made with (:mod:`llmbook.core.provenance`); reusing it in
a changed environment is reported, not refused (docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmbook.core.chapters import record_run_use
from llmbook.core.durable import (
    OLD_SUFFIX,
    atomic_write_text,
    directory_lock,
    remove_directory,
    remove_leftovers,
)
from llmbook.core.provenance import provenance, provenance_changes
from llmbook.core.utils import is_main_process

#: Bump when a change in the library makes earlier runs incomparable.
CACHE_VERSION = 2

#: The record a finished run leaves in its directory; it is finished when the record holds
#: its ``spec`` (written last, by :func:`cached_run`).
METRICS_FILE = "metrics.json"

#: The spec of the run being built in a directory, written before it starts.
STARTED_FILE = "run_started.json"

#: The resumable training state of an unfinished run (:mod:`llmbook.training.checkpoint`).
CHECKPOINT_DIR = "checkpoint"


class RunConflictError(ValueError):
    """A directory holds an interrupted run that this call may not continue."""


class RunProvenanceWarning(UserWarning):
    """A reused run was made with other versions of torch, transformers or peft, or with the
    other offline switch."""


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


def model_key(name: str) -> str:
    """A locally trained model is keyed on its own run record, not on its path."""
    model = Path(name)
    if model.is_dir() and (model / METRICS_FILE).exists():
        return json.loads((model / METRICS_FILE).read_text()).get("run_key", name)
    return name


def run_dir(kind: str, config: dict) -> Path:
    """Directory of the run of ``kind`` (e.g. ``finetune``) with this configuration."""
    return runs_root() / f"{kind}-{config_key(config)}"


def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None if it is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def finished_metrics(directory: Path, spec: dict) -> dict | None:
    """The ``metrics.json`` of the finished run of ``spec`` in ``directory``, else ``None``.

    A run is finished when its weights are written and its metrics record that very spec
    (the record is written last, so an interrupted run never counts as finished).
    """
    directory = Path(directory)
    if not any(directory.glob("*.safetensors")):
        return None
    metrics = _read_json(directory / METRICS_FILE)
    return metrics if metrics is not None and metrics.get("spec") == spec else None


def describe_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``"name: old -> new"`` for each (nested) field where two configurations differ."""
    changes = []
    for name in sorted(set(old) | set(new), key=str):
        before, after = old.get(name), new.get(name)
        if isinstance(before, dict) and isinstance(after, dict):
            changes += describe_differences(before, after, f"{prefix}{name}.")
        elif before != after:
            changes.append(f"{prefix}{name}: {before!r} -> {after!r}")
    return changes


def has_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` holds the resumable state of an interrupted run."""
    return any((directory / f"{CHECKPOINT_DIR}{suffix}").is_dir() for suffix in ("", OLD_SUFFIX))


def _start_build(directory: Path, key: dict, force: bool, resume: bool) -> None:
    """Check that ``directory`` may be built for ``key``, then record that it is.

    An interrupted run there (a checkpoint) is continued only if ``resume`` and it was started
    with the same spec; ``force`` discards it.  A finished run's record is removed first, so
    that a kill while its files are being replaced never leaves it looking finished.
    """
    if force:
        remove_directory(directory / CHECKPOINT_DIR)
    elif has_checkpoint(directory):
        started = _read_json(directory / STARTED_FILE) or {}
        if started.get("spec", key) != key:
            differences = "; ".join(describe_differences(started["spec"], key)[:4])
            raise RunConflictError(
                f"{directory} holds an interrupted run with another configuration "
                f"({differences}): it cannot be resumed; pass --force to discard it and start "
                "afresh, or choose another --out")
        if not resume:
            raise RunConflictError(f"{directory} holds an interrupted run: pass --resume to "
                                   "continue it, or --force to discard it and start afresh")
    remove_leftovers(directory)  # of a killed writer; no other one is running (the lock)
    metrics = _read_json(directory / METRICS_FILE)
    if metrics is not None and "spec" in metrics:
        (directory / METRICS_FILE).unlink()
    atomic_write_text(directory / STARTED_FILE,
                      json.dumps({"spec": key, "run_key": config_key(key)}, indent=2, default=str))


@dataclass
class Run:
    """A finished run: where it is, what it measured, and whether it came from the cache.

    ``loader`` turns the directory into ``(tokenizer, model)``: :meth:`load` calls it.
    """

    model_dir: Path
    metrics: dict
    cached: bool
    loader: Callable[[Path], tuple] | None = None
    #: how the environment differs from the one a reused run was made with (versions, offline
    #: switch, library source; :func:`llmbook.core.provenance.provenance_changes`)
    provenance_changes: list[str] = field(default_factory=list)

    @property
    def test_metrics(self) -> dict:
        return self.metrics["test"]

    def origin(self) -> str:
        """For a command's report line: `` (cached)``, `` (resumed at step N)`` or ``""``
        (trained just now).  A reused run made with other versions also gets a warning on
        stderr."""
        if self.cached and self.provenance_changes:
            print(f"warning: {self.model_dir} was made with "
                  f"{', '.join(self.provenance_changes)}; reused as it is (--force retrains it)",
                  file=sys.stderr)
        resumed = self.metrics.get("resumed_at_step")
        return " (cached)" if self.cached else f" (resumed at step {resumed})" if resumed else ""

    def load(self):
        """``(tokenizer, model)`` of the run's best checkpoint, ready for inference."""
        if self.loader is None:
            raise ValueError(f"no loader for the run in {self.model_dir}")
        return self.loader(self.model_dir)


def cached_run(kind: str, key: dict, build: Callable[[Path], dict], out: str | Path | None = None,
               force: bool = False, loader: Callable[[Path], tuple] | None = None,
               resume: bool = True) -> Run:
    """The finished run of ``kind`` with configuration ``key``, built if it is not in the cache.

    ``build(directory)`` trains into ``directory`` (the loop writes ``metrics.json``) and returns
    what to add to that record; the record then gets the ``spec`` and ``run_key`` that make the
    run findable, and ``made_with`` (:func:`llmbook.core.provenance.provenance`).  ``out``
    overrides the cache directory; ``force`` rebuilds a finished run and discards an
    interrupted one; ``resume`` continues an interrupted run of the same spec (without it,
    such a run is a :class:`RunConflictError`).  One process at a time builds a directory:
    another one waits for it, then finds the finished run.
    """
    directory = Path(out) if out else run_dir(kind, key)
    if not is_main_process():  # one of several training processes: the first keeps the books
        return _build_alongside(directory, key, build, force, loader)
    with directory_lock(directory):
        finished = None if force else finished_metrics(directory, key)
        if finished is not None:
            record_run_use(runs_root(), kind, config_key(key), built=False, seconds=0.0)
            return _reused(directory, finished, loader)
        directory.mkdir(parents=True, exist_ok=True)
        _start_build(directory, key, force, resume)
        started = time.perf_counter()
        added = build(directory)
        record_run_use(runs_root(), kind, config_key(key), built=True,
                       seconds=time.perf_counter() - started)
        metrics = json.loads((directory / METRICS_FILE).read_text())
        metrics.update(spec=key, run_key=config_key(key), **added, made_with=provenance())
        atomic_write_text(directory / METRICS_FILE,  # the marker: written last
                          json.dumps(metrics, indent=2))
        (directory / STARTED_FILE).unlink(missing_ok=True)
    return Run(directory, metrics, cached=False, loader=loader)


def _reused(directory: Path, metrics: dict, loader) -> Run:
    """A finished run found in the cache; a warning if torch, transformers, peft or the offline
    switch changed since it was made (a changed library source is only listed on the Run)."""
    changes = provenance_changes(metrics.get("made_with"))
    versions = [change for change in changes if not change.startswith("llmbook source")]
    if versions:
        warnings.warn(f"{directory} was made with {', '.join(versions)}: reused as it is; "
                      "pass force=True (--force) to retrain it", RunProvenanceWarning,
                      stacklevel=3)
    return Run(directory, metrics, cached=True, loader=loader, provenance_changes=changes)


def _build_alongside(directory: Path, key: dict, build: Callable[[Path], dict], force: bool,
                     loader) -> Run:
    """A non-main process of a multi-process build (the "Scaling out" page): it trains with
    the others but neither locks, records nor writes; the main process does all three."""
    finished = None if force else finished_metrics(directory, key)
    if finished is not None:
        return Run(directory, finished, cached=True, loader=loader)
    added = build(directory)
    metrics = json.loads((directory / METRICS_FILE).read_text())
    metrics.update(spec=key, run_key=config_key(key), **added)
    return Run(directory, metrics, cached=False, loader=loader)


def cached_json(kind: str, key: dict, compute: Callable[[], object], refresh: bool = False):
    """``compute()`` (JSON-serialisable), stored once in ``runs/`` under ``kind`` and ``key``."""
    results = run_dir(kind, key) / "results.json"
    with directory_lock(results.parent):
        if results.exists() and not refresh:
            record_run_use(runs_root(), kind, config_key(key), built=False, seconds=0.0)
            return json.loads(results.read_text())
        started = time.perf_counter()
        value = compute()
        record_run_use(runs_root(), kind, config_key(key), built=True,
                       seconds=time.perf_counter() - started)
        atomic_write_text(results, json.dumps(value, indent=2))
    return value


def add_run_options(parser) -> None:
    """``--force`` and ``--resume`` on a command that trains a cached run (:func:`cached_run`)."""
    parser.add_argument("--force", action="store_true", help="retrain even if a finished run "
                        "exists (and discard an interrupted one)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in "
                        "the directory from its checkpoint (refused if its configuration differs)")
