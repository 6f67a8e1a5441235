"""Chapter 10's comparison of parameter-efficient methods: their learning rates, memory and time per
step, and the comparison table."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from llmbook.data.corpora import load_sentiment
from llmbook.models.adapters import adapt, adapter_bytes, check_method
from llmbook.models.loading import load_classifier, load_tokenizer
from llmbook.training.optim import make_optimizer

#: Learning rates that work on this data for each method (full fine-tuning uses the profile's);
#: chapter 10 measures a sweep for LoRA on the validation split.
LEARNING_RATES = {"lora": 1e-3, "adalora": 1e-3, "prefix": 1e-2, "prompt": 3e-2, "ia3": 5e-3}


def comparison_table(runs: dict, costs: dict[str, dict]):
    """One row per method: trainable parameters, accuracy, size on disk, memory and speed.

    ``runs`` maps a method label to its :class:`llmbook.adaptation.finetune.Run`, ``costs`` to
    :func:`training_cost` measured side by side; ratios are to the ``full`` row.
    """
    rows = []
    for label, run in runs.items():
        metrics = dict(run.metrics)
        if "trainable_parameters" not in metrics:  # a full run cached before counts were kept
            total = sum(p.numel() for p in run.load()[1].parameters())
            metrics.update(trainable_parameters=total, total_parameters=total,
                           weights_bytes=adapter_bytes(run.model_dir))
        rows.append({
            "method": label,
            "trainable parameters": metrics["trainable_parameters"],
            "trainable %": 100 * metrics["trainable_parameters"] / metrics["total_parameters"],
            "validation accuracy": metrics["best_validation"]["accuracy"],
            "test accuracy": run.test_metrics["accuracy"],
            "weights on disk (MB)": metrics["weights_bytes"] / 2**20,
            "training memory (MB)": costs[label]["training_mb"],
            "examples/s": costs[label]["examples_per_second"],
        })
    table = pd.DataFrame(rows)
    full = table.set_index("method").loc["full"]
    table["memory vs full"] = table["training memory (MB)"] / full["training memory (MB)"]
    table["speed vs full"] = table["examples/s"] / full["examples/s"]
    return table


def _rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _training_cost(method: str, model_name: str, batch_size: int, max_length: int,
                   steps: int) -> dict:
    """In a fresh process: memory after loading; peak memory and speed over ``steps`` steps."""
    torch.manual_seed(0)
    tokenizer = load_tokenizer(model_name)
    texts = list(load_sentiment("rotten_tomatoes")["train"]["text"][:batch_size])
    batch = tokenizer(texts, truncation=True, max_length=max_length, padding="max_length",
                      return_tensors="pt")
    labels = torch.arange(batch_size) % 2
    model = adapt(load_classifier(num_labels=2, name=model_name), method, total_steps=steps)
    loaded = _rss_mb()
    optimizer = make_optimizer(model, 1e-4, 0.01)
    model.train()
    start = None
    for step in range(steps + 1):  # the first step warms up and is not timed
        start = time.perf_counter() if step == 1 else start
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"loaded_mb": loaded, "peak_mb": peak, "training_mb": peak - loaded,
            "examples_per_second": steps * batch_size / seconds}


def training_cost(method: str, model_name: str = "minilm", batch_size: int = 32,
                  max_length: int = 64, steps: int = 5) -> dict:
    """Training memory and speed of ``method``, measured in a separate process.

    A fresh process per method, because a process's peak memory never goes down: measured
    in the notebook's own process, every method would inherit the largest earlier peak.
    ``training_mb`` is the growth over the loaded model (gradients, optimizer state and
    activations: what parameter-efficient methods save); ``examples_per_second`` is timed
    over ``steps`` steps on a fixed batch padded to ``max_length``.  Not cached: it is a
    benchmark of the machine that runs it, so methods compared are measured side by side.
    """
    check_method(method)
    args = [method, model_name, str(batch_size), str(max_length), str(steps)]
    done = subprocess.run([sys.executable, "-m", __name__, *args], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cost probe for {method} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    name, model, size, length, count = sys.argv[1:6]
    print(json.dumps(_training_cost(name, model, int(size), int(length), int(count))))
