"""Quantisation and export for chapter 14: int8 PyTorch, ONNX and int8 ONNX, cached exports."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from onnxruntime import quantization as ort_quantization
from torch.ao.quantization import quantize_dynamic

from llmbook.core.assets import file_sha256
from llmbook.core.runs import run_dir
from llmbook.deployment.manifest import MANIFEST, verify_manifest, write_manifest
from llmbook.deployment.pruning import count_heads, prune_heads
from llmbook.deployment.variants import encode
from llmbook.models.inference import load_for_inference

ONNX_FILE = "model.onnx"


# ----------------------------------------------------------------------------- int8
def quantize_torch_int8(model):
    """Dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations at run time).

    Uses ``torch.ao.quantization.quantize_dynamic``: deprecated in torch 2.13 in favour of
    ``torchao``, which this environment does not have (see the module docstring).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor", category=UserWarning)

        return quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear},
                                dtype=torch.qint8)


# ----------------------------------------------------------------------------- ONNX
def export_onnx(model, tokenizer, path: str | Path) -> Path:
    """Export ``model`` to one ONNX file with dynamic batch and sequence axes.

    Inputs ``input_ids`` and ``attention_mask`` (int64), output ``logits``; uses the torch.export
    based exporter of ``torch.onnx.export`` (``dynamo=True``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = {k: torch.from_numpy(v) for k, v in
               encode(tokenizer, ["an example", "a second, longer example text"], 16).items()}
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    with warnings.catch_warnings(), _quiet_logs("torch.onnx"):
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (), str(path), kwargs=example, dynamo=True,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_shapes={"input_ids": dims, "attention_mask": dims},
                          external_data=False, verbose=False)
    return path


def quantize_onnx_int8(source: str | Path, target: str | Path) -> Path:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized at run time."""
    with _quiet_logs(""):  # it advises pre-processing through the root logger
        ort_quantization.quantize_dynamic(str(source), str(target),
                                          weight_type=ort_quantization.QuantType.QInt8,
                                          per_channel=True)
    return Path(target)


def source_files(model_dir: str | Path) -> dict[str, str]:
    """sha256 of every file at the top of ``model_dir`` (what a loader can read there), by
    name: a changed tokenizer or config makes a new export, not only changed weights.  Hidden
    files (``.lock``-style bookkeeping of the runs cache) are left out: no loader reads them."""
    return {p.name: file_sha256(p) for p in sorted(Path(model_dir).iterdir())
            if p.is_file() and not p.name.startswith(".")}


@contextmanager
def _quiet_logs(name: str):
    """Drop log records below ERROR from logger ``name`` ("" = root) while exporting.

    A temporary handler also keeps ``logging.warning`` from installing a root handler.
    """
    logger, handler = logging.getLogger(name), logging.NullHandler()
    level = logger.level
    logger.setLevel(logging.ERROR)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def cached_export(model_dir: str | Path, quantize: str | None = None,
                  heads: dict[int, list[int]] | None = None) -> Path:
    """:func:`export_model` into the ``runs/`` cache, keyed by the sha256 of every file of
    ``model_dir`` (:func:`source_files`: weights, config, tokenizer, adapter, ...).

    ``heads`` (``{layer: [head, ...]}``) are removed with :func:`prune_heads` before export.
    A finished export (manifest present and valid) is reused.
    """
    model_dir = Path(model_dir)
    directory = run_dir("export", {"files": source_files(model_dir), "quantize": quantize,
                                   "torch": torch.__version__,
                                   "heads": {str(k): v for k, v in (heads or {}).items()}})
    if (directory / MANIFEST).exists():
        verify_manifest(directory)
        return directory
    model = prune_heads(load_for_inference(model_dir)[1], heads) if heads else None
    return export_model(model_dir, directory, quantize, model)


# ----------------------------------------------------------------------------- export
def export_model(model_dir: str | Path, out: str | Path, quantize: str | None = None,
                 model=None, key: bytes | None = None) -> Path:
    """Write a servable ONNX directory: ``model.onnx`` (+ int8), tokenizer, config, manifest.

    ``model`` (e.g. a head-pruned copy) replaces the weights loaded from ``model_dir``;
    ``quantize="int8"`` applies :func:`quantize_onnx_int8`; ``key`` signs the manifest
    (default: :func:`~llmbook.deployment.manifest.manifest_key`, from the environment).
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    model_dir, out = Path(model_dir), Path(out)
    tokenizer, loaded = load_for_inference(model_dir)
    model = model if model is not None else loaded
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.onnx"):
        stale.unlink()
    onnx_path = export_onnx(model, tokenizer, out / ONNX_FILE)
    if quantize:
        quantized = quantize_onnx_int8(onnx_path, out / "model.int8.onnx")
        onnx_path.unlink()
        quantized.rename(onnx_path)
    tokenizer.save_pretrained(out)
    shutil.copy(model_dir / "config.json", out / "config.json")
    info = {"source": str(model_dir), "format": "onnx", "quantize": quantize or "none",
            "heads": count_heads(model), "layers": model.config.num_hidden_layers,
            "source_sha256": source_files(model_dir)}
    (out / "export.json").write_text(json.dumps(info, indent=2))
    write_manifest(out, key)
    return out
