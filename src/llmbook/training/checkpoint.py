"""Best-model tracking, checkpoint and resume, and the files a finished run leaves (chapter 9).

The loop of :mod:`llmbook.training.loop` keeps the weights of its best evaluation in memory
(:class:`BestModel`), writes a resumable training state now and then (:class:`Checkpointer`),
and, when it finishes, leaves a model directory with ``metrics.json`` and no checkpoint
(:func:`finish_run`).  Every file is written atomically (:mod:`llmbook.core.durable`): the
checkpoint is written whole beside the previous one, then swapped in, and records the training
configuration, so a kill at any moment leaves a checkpoint that resumes exactly, and one
written with another configuration is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from llmbook.core.durable import (
    PARTIAL_SUFFIX,
    atomic_write_text,
    readable_directory,
    remove_directory,
    staged_files,
    swap_directory,
)
from llmbook.core.runs import METRICS_FILE, describe_differences
from llmbook.training.config import (
    CHECKPOINT_DIR,
    STATE_FILE,
    WEIGHTS_FILE,
    TrainConfig,
    TrainResult,
)


@dataclass
class LoopState:
    """Where the loop is: optimizer steps, epoch, micro-batches into it, best metric, patience."""

    step: int = 0
    epoch: int = 0
    micro_step: int = 0
    best: float | None = None
    patience: int = 0  # evaluations since the best one


class BestModel:
    """The weights of the best evaluation so far, copied to the CPU."""

    def __init__(self, greater_is_better: bool, weights: dict | None = None):
        self.greater_is_better = greater_is_better
        self.weights = weights

    @classmethod
    def resumed(cls, config: TrainConfig, state: LoopState, out: Path | None) -> BestModel:
        """After a resume, the best weights are the ones saved before the interruption."""
        saved = out is not None and state.best is not None and (out / WEIGHTS_FILE).exists()
        return cls(config.greater_is_better, load_file(out / WEIGHTS_FILE) if saved else None)

    def improves(self, value: float, best: float | None) -> bool:
        return best is None or (value > best if self.greater_is_better else value < best)

    def keep(self, model) -> None:
        self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def restore(self, model) -> None:
        """Load the kept weights into ``model`` (nothing to do if none were kept)."""
        if self.weights is None:
            return
        _, unexpected = model.load_state_dict(self.weights, strict=False)
        if unexpected:
            raise RuntimeError(f"best checkpoint does not match the model: {unexpected[:5]}")


class Checkpointer:
    """Writes the resumable state to ``out/checkpoint`` -- unless too little time has passed.

    A short run is cheaper to redo than to checkpoint: a save needs ``min_seconds`` of
    training since the previous one.
    """

    def __init__(self, out: Path | None, min_seconds: float):
        self.out, self.min_seconds, self.saved_at = out, min_seconds, 0.0

    def maybe_save(self, accelerator, state: LoopState, result: TrainResult, seconds: float,
                   config: TrainConfig) -> None:
        if accelerator.num_processes > 1:  # every process must take the same decision
            seconds = accelerator.reduce(torch.tensor(seconds, device=accelerator.device),
                                         "mean").item()
        if self.out is None or seconds - self.saved_at < self.min_seconds:
            return
        self.saved_at = seconds
        partial = self.out / (CHECKPOINT_DIR + PARTIAL_SUFFIX)
        if accelerator.is_main_process:
            remove_directory(partial)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            record = {"state": asdict(state), "result": asdict(result),
                      "config": _comparable(config)}
            atomic_write_text(partial / STATE_FILE, json.dumps(record))  # complete from here
            swap_directory(partial, self.out / CHECKPOINT_DIR)
        accelerator.wait_for_everyone()  # the state is complete before anyone goes on


def _comparable(config: TrainConfig) -> dict:
    """The fields that determine the result, as JSON gives them back."""
    return json.loads(json.dumps(config.result_fields(), default=str))


def load_training_state(accelerator, out: Path | None,
                        config: TrainConfig) -> tuple[LoopState, TrainResult] | None:
    """The state of an interrupted run in ``out`` (restoring model, optimizer, RNGs), or None.

    A checkpoint written with another training configuration is a ValueError.
    """
    folder = None if out is None else readable_directory(
        out / CHECKPOINT_DIR, lambda folder: (folder / STATE_FILE).is_file())
    if folder is None:
        return None
    saved = json.loads((folder / STATE_FILE).read_text())
    if "config" in saved and saved["config"] != _comparable(config):
        differences = "; ".join(describe_differences(saved["config"], _comparable(config))[:4])
        raise ValueError(f"the checkpoint in {out} was written with another training "
                         f"configuration ({differences}): refusing to resume it")
    accelerator.load_state(str(folder))
    state, result = LoopState(**saved["state"]), TrainResult(**saved["result"])
    result.resumed_at_step = state.step
    return state, result


def metrics_record(result: TrainResult, config: TrainConfig) -> dict:
    """What ``metrics.json`` holds: the best validation metrics, timings, logs and config."""
    return {
        "best_validation": result.best_metrics,
        "best_step": result.best_step,
        "total_steps": result.total_steps,
        "train_seconds": result.train_seconds,
        "examples_per_second": result.examples_per_second,
        "stopped_early": result.stopped_early,
        "resumed_at_step": result.resumed_at_step,
        "num_processes": result.num_processes,
        "global_batch_size": config.batch_size * config.gradient_accumulation_steps,
        "examples_seen": result.examples_seen,
        "config": asdict(config),
        "train_log": result.train_log,
        "eval_log": result.eval_log,
    }


def save_model(model, tokenizer, directory: Path, metrics: dict | None = None) -> None:
    """Write safetensors weights, config, tokenizer and (optionally) ``metrics.json``, each
    file replaced in one step."""
    with staged_files(directory) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    if metrics is not None:
        atomic_write_text(directory / METRICS_FILE, json.dumps(metrics, indent=2))


def finish_run(model, tokenizer, out: Path, result: TrainResult, config: TrainConfig,
               selected: bool) -> None:
    """Leave ``out`` as a finished run: the model (the final weights if no evaluation selected
    one), ``metrics.json``, and no checkpoint (there is nothing to resume)."""
    if not selected:
        save_model(model, tokenizer, out)
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics_record(result, config), indent=2))
    remove_directory(out / CHECKPOINT_DIR)
