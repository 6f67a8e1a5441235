"""Checksummed model manifests (chapter 15): a served model is exactly the model that was tested."""

from __future__ import annotations

import json
from pathlib import Path

from llmbook.core.assets import file_sha256

MANIFEST = "manifest.json"

#: Files a served model directory may contain; weights must be one of the first two kinds.
WEIGHT_SUFFIXES = (".safetensors", ".onnx")

METADATA_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "vocab.txt", "export.json",
                  # a causal LM's (served by /v1/generate)
                  "generation_config.json", "vocab.json", "merges.txt", "chat_template.jinja")


# ----------------------------------------------------------------------------- manifest
class ManifestError(RuntimeError):
    """A model directory whose files do not match its sha256 manifest (or has none)."""


def write_manifest(directory: str | Path) -> Path:
    """Write ``manifest.json``: the sha256 of every weight and metadata file in ``directory``."""
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir()
                   if p.suffix in WEIGHT_SUFFIXES or p.name in METADATA_FILES)
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        raise ManifestError(f"{directory} has no .safetensors or .onnx weights to list")
    manifest = {"files": {p.name: file_sha256(p) for p in files}}
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2))
    return path


def verify_manifest(directory: str | Path) -> list[Path]:
    """Check every file listed in the manifest; return the listed weight files.

    Raises :class:`ManifestError` if the manifest is missing, a listed file is missing or
    changed, or a weight file in the directory is not listed (it would never be loaded).
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        raise ManifestError(f"{directory} has no {MANIFEST}: create it with `llmbook export` "
                            "or llmbook.deployment.manifest.write_manifest")
    listed = json.loads(path.read_text()).get("files", {})
    for name, expected in listed.items():
        file = directory / name
        if not file.exists():
            raise ManifestError(f"{file} is listed in {MANIFEST} but missing")
        if file_sha256(file) != expected:
            raise ManifestError(f"{file} does not match its sha256 in {MANIFEST}: refusing to "
                                "load a modified model file")
    unlisted = [p.name for p in directory.iterdir()
                if p.suffix in WEIGHT_SUFFIXES and p.name not in listed]
    if unlisted:
        raise ManifestError(f"weight files not in {MANIFEST}: {', '.join(sorted(unlisted))}")
    weights = [directory / n for n in listed if Path(n).suffix in WEIGHT_SUFFIXES]
    if not weights:
        raise ManifestError(f"{MANIFEST} in {directory} lists no weight file")
    return weights
