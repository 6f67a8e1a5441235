"""Compressing a fine-tuned classifier for deployment (chapter 14; ``llmbook export``).

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

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import torch

from llmbook.data.tokenization import check_texts, map_by_length
from llmbook.training.evaluation import classification_metrics

#: Threads every variant runs with (PyTorch intra-op and ONNX Runtime intra-op): the 2 cores
#: of the book's reference machine, i.e. one serving replica.
THREADS = 2

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
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def torch_variant(name: str, model) -> Variant:
    """A PyTorch model run eagerly under ``inference_mode`` with :data:`THREADS` threads."""
    model.eval()

    def run(batch: Batch) -> np.ndarray:
        torch.set_num_threads(THREADS)
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
            return model(**inputs).logits.float().numpy()

    return Variant(name, run, torch_state_bytes(model))


def ort_session(path: str | Path, threads: int = THREADS):
    """An ONNX Runtime CPU session with all graph optimisations and a fixed thread count."""
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
        self.predictions: dict[str, np.ndarray] = {}  # variant name -> its last predictions
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
        self.predictions[variant.name] = self.logits(variant).argmax(-1)
        return classification_metrics(self.labels, self.predictions[variant.name])["accuracy"]

    def correct(self, name: str) -> np.ndarray:
        """Per text: was the variant called ``name`` right when its accuracy was measured (the
        flags a paired test of two variants needs, chapter 14)."""
        if name not in self.predictions:
            raise KeyError(f"no accuracy measured yet for {name!r}")
        return self.predictions[name] == self.labels

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


def max_logit_difference(reference: Variant, other: Variant, batches: Sequence[Batch]) -> float:
    """Largest ``|logits(reference) - logits(other)|`` over ``batches``."""
    return float(max(np.abs(reference.run(b) - other.run(b)).max() for b in batches))
