"""Writes that a kill cannot leave half done, and the lock of a run directory (the ``runs/``
cache of every chapter; chapter 9's checkpoints).

* :func:`atomic_write_text` and :func:`atomic_save`: a file is written under a temporary name
  in its own folder, flushed to disk, then renamed over the old one (``os.replace`` is atomic
  on one file system), so a reader sees the old file or the new one, never a torn one.
* :func:`staged_files`: several files (a model's weights, config and tokenizer) are written
  into a staging folder, then each is renamed into place.
* :func:`swap_directory`: a whole folder (a training checkpoint) replaces the previous one;
  until the new one is complete the previous one stays readable (:func:`readable_directory`).
* :func:`directory_lock`: one process at a time builds a given run directory; the others wait
  (the lock is the operating system's, so a killed holder releases it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

#: Suffixes of a swapped folder's previous version and of the one being written.
OLD_SUFFIX, PARTIAL_SUFFIX = ".old", ".partial"


def atomic_save(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, then rename the result to ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name, created by ``write`` itself (so with the usual permissions, not mkstemp's)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: the old file or the new one, never half."""
    return atomic_save(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


@contextmanager
def staged_files(directory: str | Path) -> Iterator[Path]:
    """A staging folder inside ``directory``; on success each file written there is renamed
    into ``directory`` (each rename atomic), on failure the staging folder is removed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            target = directory / item.name
            if item.is_dir() and target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def swap_directory(written: Path, target: Path) -> None:
    """Put the complete folder ``written`` at ``target``; the previous ``target`` is kept as
    ``target.old`` until the new one is in place, then removed."""
    old = target.with_name(target.name + OLD_SUFFIX)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(written, target)
    shutil.rmtree(old, ignore_errors=True)


def readable_directory(target: Path, complete: Callable[[Path], bool]) -> Path | None:
    """``target`` if ``complete(target)``, else its previous version left by an interrupted
    :func:`swap_directory` if that one is complete, else None."""
    for folder in (target, target.with_name(target.name + OLD_SUFFIX)):
        if folder.is_dir() and complete(folder):
            return folder
    return None


def remove_directory(target: Path) -> None:
    """``target`` and the previous and partial versions :func:`swap_directory` may leave."""
    for suffix in ("", OLD_SUFFIX, PARTIAL_SUFFIX):
        shutil.rmtree(target.with_name(target.name + suffix), ignore_errors=True)


def remove_leftovers(directory: Path) -> None:
    """Temporary files and staging folders that a killed writer left in ``directory``."""
    for path in directory.glob(".staging-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in directory.glob(".*.tmp"):
        path.unlink(missing_ok=True)


@contextmanager
def directory_lock(directory: str | Path) -> Iterator[None]:
    """Hold the lock of ``directory`` (a hidden ``.NAME.lock`` beside it); while another
    process holds it, say so once on stderr and wait."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(directory.parent / f".{directory.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting: another process is building {directory}", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
