"""What a run was made with, recorded in its ``metrics.json`` (the ``runs/`` cache of every
chapter): the versions of torch, transformers and peft, the offline switch
(``LLMBOOK_OFFLINE``), and a sha256 of the library's own source files.

These are recorded, not part of the cache key: a key on the source hash would retrain every
chapter after any edit of the library (docs/decisions.md).  Instead, a reused run whose record
differs from the running environment is reported (:func:`provenance_changes`).
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path

from llmbook.core.utils import is_offline

#: The libraries whose version can change what a run computes.
TRACKED_PACKAGES = ("torch", "transformers", "peft")

#: The ``llmbook`` package folder, whose ``*.py`` files :func:`source_sha256` hashes.
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`TRACKED_PACKAGES` (None if it is not installed)."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def source_sha256(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the path and bytes of every ``*.py`` file of the library, in path order."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def provenance() -> dict:
    """The record of the running environment that a finished run keeps as ``made_with``."""
    return {"versions": package_versions(), "offline": is_offline(),
            "source_sha256": source_sha256()}


def provenance_changes(recorded: dict | None, current: dict | None = None) -> list[str]:
    """How the environment a run was ``recorded`` with differs from ``current`` (default: now),
    one phrase per difference; empty when the run predates the record."""
    if not recorded:
        return []
    current = current or provenance()
    changes = []
    for name, now in current["versions"].items():
        then = recorded.get("versions", {}).get(name, now)
        if then != now:
            changes.append(f"{name} {then} (now {now})")
    if recorded.get("offline", current["offline"]) != current["offline"]:
        changes.append(f"LLMBOOK_OFFLINE {'on' if recorded['offline'] else 'off'} "
                       f"(now {'on' if current['offline'] else 'off'})")
    then = recorded.get("source_sha256", current["source_sha256"])
    if then != current["source_sha256"]:
        changes.append(f"llmbook source {then[:12]} (now {current['source_sha256'][:12]})")
    return changes
