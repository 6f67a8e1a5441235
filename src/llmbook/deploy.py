"""Compressing a fine-tuned classifier for deployment (chapter 10; ``llmbook export``).

Every variant of the model -- fp32 eager PyTorch, magnitude-pruned, head-pruned, int8, ONNX
Runtime fp32/int8 -- is wrapped in a :class:`Variant`: a function from token ids to logits plus
its size on disk.  One :class:`Benchmark` then measures all of them the same way: batch-1 and
batch-32 latency (warm-up, many repeats, fixed thread count; tokenization excluded because it
is identical for every variant), throughput and accuracy on a labeled split.

Quantization in PyTorch: torch 2.13 marks ``torch.ao.quantization`` as deprecated in favour of
``torchao``'s ``quantize_`` API, but ``torchao`` is not part of this project's environment, and
the one int8 primitive left in core torch (``torch._int_mm``) has no fast CPU kernel (about 30x
slower than an fp32 matmul here).  :func:`quantize_torch_int8` therefore still calls
``torch.ao.quantization.quantize_dynamic`` (silencing just its deprecation warning); ONNX
Runtime's dynamic quantization is the supported int8 path and the one the book deploys.

Model files are only ever loaded after :func:`verify_manifest` has checked their sha256
against ``manifest.json`` (written by :func:`write_manifest` and ``llmbook export``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmbook.evaluate import classification_metrics
from llmbook.tokenization import check_texts, map_by_length

#: Threads every variant runs with (PyTorch intra-op and ONNX Runtime intra-op): the 2 cores
#: of the book's reference machine, i.e. one serving replica.
THREADS = 2
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
#: Files a served model directory may contain; weights must be one of the first two kinds.
WEIGHT_SUFFIXES = (".safetensors", ".onnx")
METADATA_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "vocab.txt", "export.json")

Batch = dict[str, np.ndarray]  # input_ids and attention_mask, int64, shape (batch, length)


# ----------------------------------------------------------------------------- variants
@dataclass
class Variant:
    """One deployable form of the model: ``run(batch) -> logits`` and its size on disk."""

    name: str
    run: Callable[[Batch], np.ndarray]
    size_bytes: int


def encode(tokenizer, texts: Sequence[str], max_length: int) -> Batch:
    """Token ids and attention mask (padded to the longest text) as int64 NumPy arrays."""
    batch = tokenizer(check_texts(texts), truncation=True, max_length=max_length, padding=True,
                      return_token_type_ids=False, return_tensors="np")
    return {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")}


def torch_state_bytes(model) -> int:
    """Bytes of the model's ``state_dict`` serialised with ``torch.save`` (its size on disk)."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def torch_variant(name: str, model) -> Variant:
    """A PyTorch model run eagerly under ``inference_mode`` with :data:`THREADS` threads."""
    import torch

    model.eval()

    def run(batch: Batch) -> np.ndarray:
        torch.set_num_threads(THREADS)
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
            return model(**inputs).logits.float().numpy()

    return Variant(name, run, torch_state_bytes(model))


def ort_session(path: str | Path, threads: int = THREADS):
    """An ONNX Runtime CPU session with all graph optimisations and a fixed thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_variant(name: str, path: str | Path) -> Variant:
    """An ONNX file run in ONNX Runtime (see :func:`ort_session`)."""
    session = ort_session(path)

    def run(batch: Batch) -> np.ndarray:
        return session.run(["logits"], batch)[0]

    return Variant(name, run, Path(path).stat().st_size)


# ----------------------------------------------------------------------------- benchmark
class Benchmark:
    """Measures any :class:`Variant` the same way, on the same texts, in the same process.

    Latency is the time of ``variant.run`` on a pre-tokenized batch: ``warmup`` untimed calls,
    then ``repeats`` timed ones (a fifth as many, at least 5, at the big batch size) cycling
    over different real texts; p50/p95 in milliseconds.
    Accuracy is measured on every text of ``texts`` (with ``labels``), batched by length.
    """

    def __init__(self, tokenizer, texts: Sequence[str], labels: Sequence[int], max_length: int,
                 repeats: int = 100, warmup: int = 5, big_batch: int = 32):
        self.texts, self.labels = check_texts(texts), np.asarray(labels)
        if len(self.labels) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        self.tokenizer, self.max_length = tokenizer, max_length
        self.repeats, self.warmup, self.big_batch = repeats, warmup, big_batch
        rng = np.random.default_rng(0)
        self._batches = {size: [encode(tokenizer, list(rng.choice(self.texts, size)), max_length)
                                for _ in range(min(repeats, 20))]
                         for size in (1, big_batch)}

    def batches(self, batch_size: int) -> list[Batch]:
        """The pre-tokenized batches latency is measured on (1 or ``big_batch`` texts each)."""
        return self._batches[batch_size]

    def logits(self, variant: Variant, texts: Sequence[str] | None = None,
               batch_size: int = 64) -> np.ndarray:
        """Logits of ``variant`` for ``texts`` (default: all benchmark texts), in order."""
        return map_by_length(list(self.texts if texts is None else texts), batch_size,
                             lambda b: variant.run(encode(self.tokenizer, b, self.max_length)))

    def accuracy(self, variant: Variant) -> float:
        return classification_metrics(self.labels, self.logits(variant).argmax(-1))["accuracy"]

    def latency(self, variant: Variant, batch_size: int) -> np.ndarray:
        """Timings in milliseconds of one call at ``batch_size``."""
        batches = self.batches(batch_size)
        repeats = self.repeats if batch_size == 1 else max(5, self.repeats // 5)
        for i in range(self.warmup):
            variant.run(batches[i % len(batches)])
        timings = []
        for i in range(repeats):
            start = time.perf_counter()
            variant.run(batches[i % len(batches)])
            timings.append(time.perf_counter() - start)
        return np.asarray(timings) * 1e3

    def measure(self, variant: Variant) -> dict:
        """One results row: size, p50/p95 at batch 1 and ``big_batch``, throughput, accuracy."""
        one, big = self.latency(variant, 1), self.latency(variant, self.big_batch)
        return {
            "variant": variant.name, "size_mb": variant.size_bytes / 1e6,
            "p50_ms_b1": float(np.percentile(one, 50)), "p95_ms_b1": float(np.percentile(one, 95)),
            f"p50_ms_b{self.big_batch}": float(np.percentile(big, 50)),
            f"p95_ms_b{self.big_batch}": float(np.percentile(big, 95)),
            "texts_per_s": self.big_batch / (np.percentile(big, 50) / 1e3),
            "accuracy": self.accuracy(variant),
        }

    def table(self, variants: Sequence[Variant]) -> pd.DataFrame:
        """:meth:`measure` for each variant, with speed-ups and accuracy change vs the first."""
        table = pd.DataFrame([self.measure(v) for v in variants])
        base = table.iloc[0]
        table["speedup_b1"] = base["p50_ms_b1"] / table["p50_ms_b1"]
        table[f"speedup_b{self.big_batch}"] = (base[f"p50_ms_b{self.big_batch}"]
                                               / table[f"p50_ms_b{self.big_batch}"])
        table["accuracy_change_pt"] = 100 * (table["accuracy"] - base["accuracy"])
        return table


def sweep(benchmark: Benchmark, settings: Sequence, build: Callable[[object], Variant],
          column: str = "setting") -> pd.DataFrame:
    """Accuracy of ``build(setting)`` on the benchmark's texts for each setting."""
    return pd.DataFrame([{column: s, "accuracy": benchmark.accuracy(build(s))}
                         for s in settings])


def largest_within(table: pd.DataFrame, column: str, tolerance_pt: float) -> object:
    """Largest ``column`` value whose accuracy is within ``tolerance_pt`` points of the first row.

    Used on *validation* sweeps to choose how hard to compress before touching the test split.
    """
    floor = table["accuracy"].iloc[0] - tolerance_pt / 100
    return table.loc[table["accuracy"] >= floor, column].max()


def fastest_within(table: pd.DataFrame, tolerance_pt: float) -> tuple[pd.Series, bool]:
    """The compressed variant (any row but the first) with the largest batch-1 speed-up among
    those losing at most ``tolerance_pt`` accuracy points, and True; if none qualifies, the
    fastest of all of them, and False.  ``table`` is a :meth:`Benchmark.table`."""
    variants = table.iloc[1:]
    within = variants[variants["accuracy_change_pt"] >= -tolerance_pt]
    pool = within if len(within) else variants
    return pool.loc[pool["speedup_b1"].idxmax()], bool(len(within))


# ----------------------------------------------------------------------------- pruning
def _encoder_linears(model) -> list:
    """The ``nn.Linear`` layers inside the transformer blocks (not embeddings or the head)."""
    import torch

    return [m for m in model.base_model.encoder.modules() if isinstance(m, torch.nn.Linear)]


def magnitude_prune(model, sparsity: float):
    """A copy of ``model`` with the smallest-magnitude ``sparsity`` of encoder weights zeroed.

    Global unstructured pruning: one threshold over all encoder linear weights.  The matrices
    keep their shape, so dense kernels do exactly the same work: this saves no time by itself.
    """
    import torch

    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    pruned = copy.deepcopy(model).eval()
    weights = [m.weight for m in _encoder_linears(pruned)]
    if sparsity == 0:
        return pruned
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    threshold = torch.kthvalue(magnitudes, max(1, int(sparsity * magnitudes.numel()))).values
    with torch.no_grad():
        for weight in weights:
            weight.mul_(weight.abs() > threshold)
    return pruned


def sparsity(model) -> float:
    """Fraction of encoder linear weights that are exactly zero."""
    weights = [m.weight.detach() for m in _encoder_linears(model)]
    return float(sum((w == 0).sum().item() for w in weights) / sum(w.numel() for w in weights))


def _attention_blocks(model) -> list:
    return [layer.attention for layer in model.base_model.encoder.layer]


def head_importance(model, tokenizer, texts: Sequence[str], labels: Sequence[int],
                    max_length: int, batch_size: int = 64) -> np.ndarray:
    """Importance of each attention head, shape ``(layers, heads)`` (Michel et al., 2019).

    A gate of value 1 multiplies each head's output; the importance of a head is the absolute
    gradient of the classification loss with respect to its gate, summed over ``texts``.
    """
    import torch

    blocks = _attention_blocks(model)
    heads, size = blocks[0].self.num_attention_heads, blocks[0].self.attention_head_size
    gates = torch.ones(len(blocks), heads, requires_grad=True)
    hooks = [block.output.dense.register_forward_pre_hook(
        lambda _, args, i=i: (args[0] * gates[i].repeat_interleave(size),))
        for i, block in enumerate(blocks)]
    model.eval()
    try:
        for start in range(0, len(texts), batch_size):
            batch = {k: torch.from_numpy(v) for k, v in
                     encode(tokenizer, texts[start:start + batch_size], max_length).items()}
            target = torch.as_tensor(np.asarray(labels[start:start + batch_size]))
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, target,
                                                     reduction="sum")
            loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
    return gates.grad.abs().numpy()


def least_important_heads(importance: np.ndarray, count: int) -> dict[int, list[int]]:
    """The ``count`` lowest-importance heads as ``{layer: [head, ...]}`` (never a whole layer)."""
    order = np.argsort(importance, axis=None, kind="stable")
    chosen: dict[int, list[int]] = {}
    heads = importance.shape[1]
    for flat in order:
        if sum(map(len, chosen.values())) == count:
            break
        layer, head = divmod(int(flat), heads)
        if len(chosen.get(layer, [])) < heads - 1:
            chosen.setdefault(layer, []).append(head)
    return {layer: sorted(h) for layer, h in sorted(chosen.items())}


def prune_heads(model, heads: dict[int, Sequence[int]]):
    """A copy of ``model`` with the given heads *removed* (structured pruning).

    The query/key/value projections lose those heads' output rows and the attention output
    projection loses the matching input columns, so every matmul gets smaller.
    """
    import torch

    pruned = copy.deepcopy(model).eval()
    for layer, drop in heads.items():
        attention = _attention_blocks(pruned)[layer]
        self_attention, size = attention.self, attention.self.attention_head_size
        keep_heads = [h for h in range(self_attention.num_attention_heads) if h not in set(drop)]
        if not keep_heads:
            raise ValueError(f"cannot remove every head of layer {layer}")
        index = torch.cat([torch.arange(h * size, (h + 1) * size) for h in keep_heads])
        for name in ("query", "key", "value"):
            setattr(self_attention, name, _slice_linear(getattr(self_attention, name), index, 0))
        attention.output.dense = _slice_linear(attention.output.dense, index, 1)
        self_attention.num_attention_heads = len(keep_heads)
        self_attention.all_head_size = len(keep_heads) * size
    return pruned


def _slice_linear(linear, index, dim: int):
    """A new ``nn.Linear`` keeping only ``index`` of its outputs (dim 0) or inputs (dim 1)."""
    import torch

    weight = linear.weight.detach().index_select(dim, index).clone()
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            new.bias.copy_(linear.bias.detach() if dim == 1 else linear.bias[index])
    return new


def count_heads(model) -> int:
    return sum(block.self.num_attention_heads for block in _attention_blocks(model))


# ----------------------------------------------------------------------------- int8
def quantize_torch_int8(model):
    """Dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations at run time).

    Uses ``torch.ao.quantization.quantize_dynamic``: deprecated in torch 2.13 in favour of
    ``torchao``, which this environment does not have (see the module docstring).
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor", category=UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear},
                                dtype=torch.qint8)


# ----------------------------------------------------------------------------- ONNX
def export_onnx(model, tokenizer, path: str | Path) -> Path:
    """Export ``model`` to one ONNX file with dynamic batch and sequence axes.

    Inputs ``input_ids`` and ``attention_mask`` (int64), output ``logits``; uses the torch.export
    based exporter of ``torch.onnx.export`` (``dynamo=True``).
    """
    import torch

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
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_logs(""):  # it advises pre-processing through the root logger
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         per_channel=True)
    return Path(target)


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


def max_logit_difference(reference: Variant, other: Variant, batches: Sequence[Batch]) -> float:
    """Largest ``|logits(reference) - logits(other)|`` over ``batches``."""
    return float(max(np.abs(reference.run(b) - other.run(b)).max() for b in batches))


def cached_export(model_dir: str | Path, quantize: str | None = None,
                  heads: dict[int, list[int]] | None = None) -> Path:
    """:func:`export_model` into the ``runs/`` cache, keyed by the source weights' sha256.

    ``heads`` (``{layer: [head, ...]}``) are removed with :func:`prune_heads` before export.
    A finished export (manifest present and valid) is reused.
    """
    import torch

    from llmbook.evaluate import load_for_inference
    from llmbook.runs import run_dir

    model_dir = Path(model_dir)
    weights = {p.name: sha256_file(p) for p in sorted(model_dir.glob("*.safetensors"))}
    directory = run_dir("export", {"source": weights, "quantize": quantize, "torch":
                                   torch.__version__, "heads": {str(k): v for k, v in
                                                                (heads or {}).items()}})
    if (directory / MANIFEST).exists():
        verify_manifest(directory)
        return directory
    model = prune_heads(load_for_inference(model_dir)[1], heads) if heads else None
    return export_model(model_dir, directory, quantize, model)


# ----------------------------------------------------------------------------- manifest
class ManifestError(RuntimeError):
    """A model directory whose files do not match its sha256 manifest (or has none)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: str | Path) -> Path:
    """Write ``manifest.json``: the sha256 of every weight and metadata file in ``directory``."""
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir()
                   if p.suffix in WEIGHT_SUFFIXES or p.name in METADATA_FILES)
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        raise ManifestError(f"{directory} has no .safetensors or .onnx weights to list")
    manifest = {"files": {p.name: sha256_file(p) for p in files}}
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
                            "or llmbook.deploy.write_manifest")
    listed = json.loads(path.read_text()).get("files", {})
    for name, expected in listed.items():
        file = directory / name
        if not file.exists():
            raise ManifestError(f"{file} is listed in {MANIFEST} but missing")
        if sha256_file(file) != expected:
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


# ----------------------------------------------------------------------------- export
def export_model(model_dir: str | Path, out: str | Path, quantize: str | None = None,
                 model=None) -> Path:
    """Write a servable ONNX directory: ``model.onnx`` (+ int8), tokenizer, config, manifest.

    ``model`` (e.g. a head-pruned copy) replaces the weights loaded from ``model_dir``;
    ``quantize="int8"`` applies :func:`quantize_onnx_int8`.
    """
    from llmbook.evaluate import load_for_inference

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
            "source_sha256": {p.name: sha256_file(p) for p in model_dir.glob("*.safetensors")}}
    (out / "export.json").write_text(json.dumps(info, indent=2))
    write_manifest(out)
    return out
