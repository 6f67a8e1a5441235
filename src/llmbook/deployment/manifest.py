"""Checksummed model manifests (chapter 15): a served model is exactly the model that was tested.

``manifest.json`` lists the sha256 of *every* file in a model directory.  A directory passes
:func:`verify_manifest` only if

* every listed name is a plain relative path inside the directory (no absolute path, no ``..``,
  no symbolic link anywhere in it: a link could point out of the directory);
* every file in the directory is listed (a file the manifest does not vouch for is refused:
  a tokenizer or config loader might read it) and every listed file is there;
* every file's bytes hash to the listed sha256, and the manifest carries at least one weight file;
* with a manifest key (``$LLMBOOK_MANIFEST_KEY`` or the file named by
  ``$LLMBOOK_MANIFEST_KEY_FILE``), the manifest's HMAC-SHA256 signature matches: whoever can
  change the files but not the key cannot write a new manifest either.

Loaders go through :func:`verified_copy`: each file is hashed *while* it is copied into a
private temporary directory and the model is loaded from that copy, so the bytes hashed are the
bytes loaded (a file swapped between the check and the load is never read).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MANIFEST = "manifest.json"
KEY_VARIABLE = "LLMBOOK_MANIFEST_KEY"
KEY_FILE_VARIABLE = "LLMBOOK_MANIFEST_KEY_FILE"

#: Weight files: a manifest must list at least one.
WEIGHT_SUFFIXES = (".safetensors", ".onnx")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PARTIAL = f".{MANIFEST}.partial"  # written, then renamed: a manifest is whole or absent


# ----------------------------------------------------------------------------- manifest
class ManifestError(RuntimeError):
    """A model directory whose files do not match its sha256 manifest (or has none)."""


@dataclass(frozen=True)
class VerifiedModel:
    """A model directory that passed the manifest: ``path`` and its files' sha256 by name."""

    path: Path
    files: dict[str, str]

    @property
    def weights(self) -> list[Path]:
        return [self.path / name for name in self.files if Path(name).suffix in WEIGHT_SUFFIXES]


def manifest_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The signing key from ``$LLMBOOK_MANIFEST_KEY`` or ``$LLMBOOK_MANIFEST_KEY_FILE``."""
    environ = os.environ if environ is None else environ
    if environ.get(KEY_VARIABLE):
        return environ[KEY_VARIABLE].encode()
    if environ.get(KEY_FILE_VARIABLE):
        path = Path(environ[KEY_FILE_VARIABLE])
        if not path.is_file():
            raise ManifestError(f"{KEY_FILE_VARIABLE}={path} does not exist")
        return path.read_bytes().strip()
    return None


def signature(files: Mapping[str, str], key: bytes) -> str:
    """HMAC-SHA256 of the file list (canonical JSON), as ``hmac-sha256:<hex>``."""
    payload = json.dumps({"files": dict(files)}, sort_keys=True, separators=(",", ":"))
    return "hmac-sha256:" + hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def write_manifest(directory: str | Path, key: bytes | None = None) -> Path:
    """Write ``manifest.json``: the sha256 of every file in ``directory`` (signed with ``key``,
    by default :func:`manifest_key`, when there is one)."""
    directory = Path(directory)
    names = [n for n in _directory_files(directory) if n != _PARTIAL]
    if not any(Path(n).suffix in WEIGHT_SUFFIXES for n in names):
        raise ManifestError(f"{directory} has no .safetensors or .onnx weights to list")
    files = {name: _hash(directory / name) for name in names}
    manifest: dict = {"version": 2, "files": files}
    key = manifest_key() if key is None else key
    if key:
        manifest["signature"] = signature(files, key)
    partial = directory / _PARTIAL
    partial.write_text(json.dumps(manifest, indent=2))
    os.replace(partial, directory / MANIFEST)
    return directory / MANIFEST


def verify_manifest(directory: str | Path, key: bytes | None = None) -> list[Path]:
    """Check ``directory`` against its manifest (in place); return the listed weight files.

    Raises :class:`ManifestError` saying what is wrong (see the module docstring).
    """
    directory = Path(directory)
    files = _checked_listing(directory, key)
    for name, expected in files.items():
        if _hash(directory / name) != expected:
            raise _changed(directory / name)
    return VerifiedModel(directory, files).weights


@contextmanager
def verified_copy(directory: str | Path, key: bytes | None = None) -> Iterator[VerifiedModel]:
    """A private copy of ``directory`` whose bytes were hashed as they were copied; load the
    model from ``.path`` inside the ``with`` block (the copy is deleted after it)."""
    directory = Path(directory)
    files = _checked_listing(directory, key)
    with tempfile.TemporaryDirectory(prefix="llmbook-verified-") as copy:
        for name, expected in files.items():
            target = Path(copy) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if _hash(directory / name, target) != expected:
                raise _changed(directory / name)
        shutil.copy(directory / MANIFEST, Path(copy) / MANIFEST)
        yield VerifiedModel(Path(copy), files)


# ----------------------------------------------------------------------------- checks
def _checked_listing(directory: Path, key: bytes | None) -> dict[str, str]:
    """The manifest's ``{name: sha256}`` once names, the directory's files and the signature
    check out (hashes are checked by the caller, as it reads the bytes)."""
    files, signed = _read(directory)
    key = manifest_key() if key is None else key
    if key and not (signed and hmac.compare_digest(signed, signature(files, key))):
        how = ("signed, but its signature does not match (another key, or changed since)"
               if signed else "not signed")
        raise ManifestError(f"{directory / MANIFEST} is {how}: refusing it (a manifest key is "
                            f"set: ${KEY_VARIABLE} or ${KEY_FILE_VARIABLE})")
    for name in files:
        _check_name(directory, name)
    present = set(_directory_files(directory))
    unlisted = sorted(present - set(files))
    if unlisted:
        raise ManifestError(f"files not in {MANIFEST}: {', '.join(unlisted)} (refusing a "
                            "directory with files the manifest does not vouch for)")
    missing = sorted(set(files) - present)
    if missing:
        raise ManifestError(f"{directory / missing[0]} is listed in {MANIFEST} but missing")
    if not VerifiedModel(directory, files).weights:
        raise ManifestError(f"{MANIFEST} in {directory} lists no weight file")
    return files


def _read(directory: Path) -> tuple[dict[str, str], str | None]:
    path = directory / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise ManifestError(f"{directory} has no {MANIFEST}: create it with `llmbook export` "
                            "or llmbook.deployment.manifest.write_manifest")
    try:
        manifest = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        raise ManifestError(f"{path} is not valid JSON: write it again") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(n, str) and isinstance(h, str) and _SHA256.fullmatch(h)
            for n, h in files.items()):
        raise ManifestError(f"{path} has no 'files' mapping of names to sha256 hex digests")
    signed = manifest.get("signature")
    return files, signed if isinstance(signed, str) else None


def _check_name(directory: Path, name: str) -> None:
    parts = name.split("/")
    if (PurePosixPath(name).is_absolute() or "\\" in name or ":" in name or "\0" in name
            or any(part in ("", ".", "..") for part in parts)
            or not (directory / name).resolve().is_relative_to(directory.resolve())):
        raise ManifestError(f"{MANIFEST} lists {name!r}: not a plain path inside {directory} "
                            "(absolute, '..' or odd characters): refusing it")


def _directory_files(directory: Path) -> list[str]:
    """Every file under ``directory`` but the manifest, as relative POSIX names; a
    :class:`ManifestError` for a symbolic link or anything that is not a file or a folder."""
    if not directory.is_dir():
        raise ManifestError(f"{directory} is not a directory")
    names = []
    for root, folders, files in os.walk(directory):
        for name in folders + files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ManifestError(f"{path} is a symbolic link: a model directory may hold "
                                    "only plain files (copy the file in instead)")
            if name in files and not stat.S_ISREG(mode):
                raise ManifestError(f"{path} is not a regular file")
            if name in files:
                names.append(path.relative_to(directory).as_posix())
    return sorted(n for n in names if n != MANIFEST)


def _hash(source: Path, target: Path | None = None) -> str:
    """sha256 of ``source``'s bytes, read once (never through a link), copied to ``target``."""
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:  # a link swapped in since the listing, or unreadable
        raise ManifestError(f"{source} cannot be read as a plain file: {err.strerror}") from None
    digest = hashlib.sha256()
    with open(fd, "rb") as handle, (open(target, "xb") if target else nullcontext()) as out:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ManifestError(f"{source} is not a regular file")
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
    return digest.hexdigest()


def _changed(path: Path) -> ManifestError:
    return ManifestError(f"{path} does not match its sha256 in {MANIFEST}: refusing to load a "
                         "modified model file")
