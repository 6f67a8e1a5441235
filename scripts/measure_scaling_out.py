"""Measure one process against two on this machine for the "Scaling out" page
(``book/scaling_out.md`` shows the JSON this writes).  Run from the repository root:
    .venv/bin/python scripts/measure_scaling_out.py [OUT_JSON]   (default book/scaling_out.json)

Two measurements, each with ``torchrun --nproc_per_node 1`` and ``2`` (gloo on the CPU):

* ``llmbook finetune --profile smoke`` and ``llmbook pretrain --from-scratch --profile smoke``
  as a reader would type them: wall time, training seconds, what ``metrics.json`` records;
* the harness of ``tests/integration/test_multiprocess.py`` (a tiny BERT, dropout off, global
  batch 16): the largest gaps between the two runs' losses and final weights.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, set_seed

from llmbook.models import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "integration" / "multiprocess_train.py"
COMMANDS = {"finetune": ["finetune", "--task", "rotten_tomatoes", "--profile", "smoke"],
            "pretrain": ["pretrain", "--from-scratch", "--profile", "smoke"]}
NOISE_ONLY = "attention.self.key.bias"  # zero gradient in exact arithmetic (see the test)


def torchrun(processes: int, *args: str) -> float:
    """Run ``args`` under torchrun with ``processes`` processes; the wall seconds it took."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", str(processes), *args], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def command_runs(work: Path) -> dict:
    """Each CLI command with 1 and 2 processes: wall time and its run record."""
    rows = {}
    for name, command in COMMANDS.items():
        for processes in (1, 2):
            out = work / f"{name}-{processes}"
            wall = torchrun(processes, "-m", "llmbook", *command, "--out", str(out), "--force")
            metrics = json.loads((out / "metrics.json").read_text())
            rows[f"{name}-{processes}"] = {
                "command": name, "processes": metrics["num_processes"],
                "global_batch_size": metrics["global_batch_size"],
                "steps": metrics["total_steps"], "examples_seen": metrics["examples_seen"],
                "train_seconds": metrics["train_seconds"], "wall_seconds": wall,
                "final_train_loss": metrics["train_log"][-1]["loss"],
                "best_validation_loss": metrics["best_validation"]["loss"]}
    return rows


def equivalence(work: Path) -> dict:
    """The test harness with 1 and 2 processes: largest loss and weight gaps."""
    set_seed(0)
    tokenizer = load_tokenizer()
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, num_labels=2,
                        max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, initializer_range=0.2)
    BertForSequenceClassification(config).save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    for processes in (1, 2):
        torchrun(processes, str(HARNESS), str(work / "model"), str(work / f"harness-{processes}"))
    logs = [json.loads((work / f"harness-{n}" / "rank0.json").read_text())["train_log"]
            for n in (1, 2)]
    weights = [torch.load(work / f"harness-{n}" / "final.pt") for n in (1, 2)]
    return {"max_loss_gap": max(abs(a["loss"] - b["loss"]) for a, b in zip(*logs, strict=True)),
            "max_weight_gap": max((value - weights[1][name]).abs().max().item()
                                  for name, value in weights[0].items()
                                  if NOISE_ONLY not in name),
            "steps": len(logs[0])}


def main(out: str = "book/scaling_out.json") -> None:
    with tempfile.TemporaryDirectory() as work:
        record = {"date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
                  "machine": platform.machine(), "runs": command_runs(Path(work)),
                  "equivalence": equivalence(Path(work))}
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
