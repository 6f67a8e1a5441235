"""The training loop of the book (chapter 9 onwards; MLM in chapters 4 and 5; PEFT in 6).

One loop, built on :class:`accelerate.Accelerator`, so the same code runs on a CPU, one GPU or
several processes (``torchrun``, ``accelerate launch``; gloo on a machine without CUDA), where
each process takes a part of every (global) batch: see :func:`prepare` and the book's "Scaling
out" page.  What it does, in order of a step:

* batches come from :class:`LengthGroupedBatchSampler` -- shuffled, and (by default) grouped
  so each batch holds texts of similar length -- and are padded only to their longest text;
* forward pass (mixed precision on GPU), loss scaled for gradient accumulation;
* with ``adversarial_epsilon`` (chapter 13), a second forward/backward pass at FGM-perturbed
  word embeddings (:func:`adversarial_backward`);
* after ``gradient_accumulation_steps`` micro-batches: gradient clipping, an
  ``torch.optim.AdamW`` step (no weight decay on biases and LayerNorm), a learning-rate
  scheduler step (linear warm-up then decay, sized in *optimizer* steps), the
  ``step_hooks`` while the gradients are still there (AdaLoRA's budget schedule uses one),
  then ``zero_grad``;
* every epoch (or every ``eval_every`` steps): evaluation in ``eval()`` mode under
  ``torch.inference_mode()``, early stopping on the validation metric, the best model kept
  in memory and, with an ``output_dir``, saved as safetensors with its tokenizer and a
  ``metrics.json``; the training state is checkpointed (unless the run is short, see
  ``checkpoint_min_seconds``) so an interrupted run can resume.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_scheduler, set_seed

from llmbook.core.utils import Timer
from llmbook.training.adversarial import adversarial_backward
from llmbook.training.batching import make_collator, make_dataloader
from llmbook.training.checkpoint import (
    BestModel,
    Checkpointer,
    LoopState,
    finish_run,
    load_training_state,
    metrics_record,
    save_model,
)
from llmbook.training.config import TrainConfig, TrainResult
from llmbook.training.consistency import rdrop_loss
from llmbook.training.evaluation import classification_eval, evaluate_model
from llmbook.training.optim import make_optimizer

# Saving a checkpoint of a masked-LM warns that the tied decoder weights are stored once;
# that is expected (they are re-tied on loading), so keep it out of the chapters' output.
logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)


def _mixed_precision(requested: str | None) -> str:
    if requested:
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


@dataclass
class Setup:
    """Everything :func:`prepare` builds: the accelerator, the prepared objects and the sizes."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: object
    eval_loader: object | None
    steps_per_epoch: int
    total_steps: int
    epochs: int

    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)


def launched_accelerator(**options) -> Accelerator:
    """An :class:`~accelerate.Accelerator` for however the program was started: one process,
    or several (``torchrun``, ``accelerate launch``), which on a machine without CUDA train on
    the CPU with gloo (accelerate would otherwise run each process alone)."""
    on_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return Accelerator(cpu=on_cpu, **options)


def prepare(model, tokenizer, train_dataset, eval_dataset, config: TrainConfig,
            collator=None) -> Setup:
    """Loaders, optimizer and schedule, placed by accelerate.

    ``config.batch_size`` is the global batch: with several processes each takes its part of
    every batch (:class:`~llmbook.training.batching.ProcessShardedBatchSampler`), so a run
    makes the same optimizer steps on one process or several.  Steps, epochs and the schedule
    are sized from the loader *after* ``accelerator.prepare`` has sharded it, in optimizer
    steps; the schedule is sized ``num_processes`` times larger because accelerate steps it
    once per process at every optimizer step.
    """
    accelerator = launched_accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=_mixed_precision(config.mixed_precision),
    )
    processes = accelerator.num_processes
    collator = collator or make_collator(tokenizer)
    train_loader = accelerator.prepare(make_dataloader(
        train_dataset, collator, config.batch_size, shuffle=True,
        group_by_length=config.group_by_length, seed=config.seed, processes=processes))
    eval_loader = None if eval_dataset is None else accelerator.prepare(make_dataloader(
        eval_dataset, collator, config.eval_batch_size, shuffle=False, group_by_length=True,
        processes=processes))
    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    optimizer = make_optimizer(model, config.learning_rate, config.weight_decay)
    scheduler = get_scheduler(config.scheduler, optimizer,
                              num_warmup_steps=round(config.warmup_ratio * total_steps) * processes,
                              num_training_steps=total_steps * processes)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return Setup(accelerator, model, optimizer, scheduler, train_loader, eval_loader,
                 steps_per_epoch, total_steps, math.ceil(total_steps / steps_per_epoch))


def _epoch_sampler(loader):
    """The book's batch sampler inside a (prepared, maybe sharded) loader: it takes the epoch."""
    sampler = loader.batch_sampler
    while not hasattr(sampler, "set_epoch"):
        sampler = sampler.batch_sampler
    return sampler


def micro_batches(setup: Setup, state: LoopState) -> Iterator[tuple[int, dict]]:
    """``(epoch, batch)`` from where ``state`` says the run is (after a resume: mid-epoch)."""
    sampler = _epoch_sampler(setup.train_loader)
    for epoch in range(state.epoch, setup.epochs):
        # accelerate's loader re-seeds its sampler from its own epoch counter: keep both in step
        setup.train_loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = setup.train_loader
        if state.micro_step:
            loader = setup.accelerator.skip_first_batches(setup.train_loader, state.micro_step)
        for batch in loader:
            yield epoch, batch


def training_step(setup: Setup, batch: dict, config: TrainConfig, step: int,
                  step_hooks: Sequence[Callable] = ()) -> torch.Tensor:
    """Forward (twice with R-Drop), backward (FGM too, chapter 13); every
    ``gradient_accumulation_steps`` micro-batches: clip, optimizer and scheduler step, hooks,
    ``zero_grad``."""
    accelerator, model = setup.accelerator, setup.model
    with accelerator.accumulate(model):
        if config.consistency_weight:
            loss = rdrop_loss(model, batch, config.consistency_weight)
        else:
            loss = model(**batch).loss
        accelerator.backward(loss)
        if config.adversarial_epsilon:
            adversarial_backward(model, batch, config.adversarial_epsilon, accelerator.backward,
                                 setup.unwrapped().get_input_embeddings().weight)
        if accelerator.sync_gradients and config.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        setup.optimizer.step()
        setup.scheduler.step()
        if accelerator.sync_gradients:  # gradients are still there (AdaLoRA reads them)
            for hook in step_hooks:
                hook(step + 1, setup.unwrapped())
        setup.optimizer.zero_grad()
    return loss


class Progress:
    """The progress bar, the running training loss logged every ``log_every`` steps, timings.

    With several processes the loss and the example count are those of the global batch (the
    mean of the processes' losses, as their averaged gradients are).
    """

    def __init__(self, config: TrainConfig, setup: Setup, state: LoopState,
                 result: TrainResult):
        # without an explicit ``disable``, tqdm honours TQDM_DISABLE=1 (set by `make book`)
        shown = config.progress and setup.accelerator.is_local_main_process
        self.bar = tqdm(total=setup.total_steps, initial=state.step, desc="train", unit="step",
                        **({} if shown else {"disable": True}))
        self.log_every, self.setup = config.log_every, setup
        self.loss, self.count, self.examples, self.seconds = 0.0, 0, 0, 0.0
        self.examples_before = result.examples_seen  # by the run this one resumes

    def micro_batch(self, loss: torch.Tensor, batch: dict, seconds: float) -> None:
        self.seconds += seconds
        examples = batch["input_ids"].shape[0]
        accelerator = self.setup.accelerator
        if accelerator.num_processes > 1:
            loss = accelerator.reduce(loss.detach(), "mean")
            examples = int(accelerator.reduce(torch.tensor(examples, device=accelerator.device),
                                              "sum").item())
        self.examples += examples
        self.loss += loss.item()
        self.count += 1

    def record(self, result: TrainResult) -> None:
        """Examples seen (by all processes, since the run began) and how it ran, into
        ``result``."""
        result.examples_seen = self.examples_before + self.examples
        result.num_processes = self.setup.accelerator.num_processes

    def optimizer_step(self, step: int, result: TrainResult) -> None:
        self.bar.update(1)
        if step % self.log_every == 0 or step == self.setup.total_steps:
            result.train_log.append({
                "step": step, "epoch": step / self.setup.steps_per_epoch,
                "loss": self.loss / self.count, "lr": self.setup.scheduler.get_last_lr()[0],
            })
            self.bar.set_postfix(loss=f"{self.loss / self.count:.4f}")
            self.loss, self.count = 0.0, 0


def evaluate_and_keep_best(setup: Setup, state: LoopState, result: TrainResult,
                           best: BestModel, config: TrainConfig, metrics_fn, save) -> float:
    """Evaluate; when the metric improves, keep the weights and ``save`` them; else lose
    patience."""
    metrics = evaluate_model(setup.model, setup.eval_loader, setup.accelerator, metrics_fn)
    result.eval_log.append({"step": state.step, "epoch": state.step / setup.steps_per_epoch,
                            **{f"eval_{k}": v for k, v in metrics.items()}})
    value = metrics[config.metric_for_best]
    if best.improves(value, state.best):
        state.best, state.patience = value, 0
        result.best_metrics, result.best_step = metrics, state.step
        best.keep(setup.unwrapped())
        save(setup.unwrapped())
    else:
        state.patience += 1
    return value


def _is_evaluation_step(setup: Setup, state: LoopState, config: TrainConfig,
                        end_of_epoch: bool) -> bool:
    every = config.eval_every or setup.steps_per_epoch
    at_epoch_end = end_of_epoch and config.eval_every is None
    return state.step % every == 0 or state.step == setup.total_steps or at_epoch_end


def train(
    model,
    tokenizer,
    train_dataset,
    eval_dataset,
    config: TrainConfig,
    *,
    metrics_fn: Callable[[np.ndarray, np.ndarray], dict] | None = classification_eval,
    collator=None,
    step_hooks: Sequence[Callable[[int, torch.nn.Module], None]] = (),
) -> TrainResult:
    """Train ``model`` on a tokenized ``train_dataset``, evaluating on ``eval_dataset``.

    Datasets hold ``input_ids``, ``attention_mask`` and ``label`` (or ``labels``).  At the end
    the model holds the weights of the best evaluation; see the module docstring for details.
    Without an ``eval_dataset`` nothing is evaluated and the final weights are the model (a
    few-shot run has no validation set to select on; chapter 11).  ``step_hooks`` are called
    as ``hook(global_step, model)`` after every optimizer step, before the gradients are
    cleared (AdaLoRA's rank allocation needs them; chapter 10).
    """
    if eval_dataset is None and config.early_stopping_patience is not None:
        raise ValueError("early stopping needs an eval_dataset to watch")
    set_seed(config.seed)
    setup = prepare(model, tokenizer, train_dataset, eval_dataset, config, collator)
    out = Path(config.output_dir) if config.output_dir else None
    state, result = load_training_state(setup.accelerator, out, config) or (
        LoopState(), TrainResult(total_steps=setup.total_steps, output_dir=config.output_dir))
    best = BestModel.resumed(config, state, out)
    checkpointer = Checkpointer(out, config.checkpoint_min_seconds)
    progress = Progress(config, setup, state, result)
    save_best = _best_saver(setup, tokenizer, out, result, config)
    setup.model.train()
    for epoch, batch in micro_batches(setup, state):
        with Timer() as timer:
            loss = training_step(setup, batch, config, state.step, step_hooks)
        progress.micro_batch(loss, batch, timer.seconds)
        state.micro_step += 1
        if not setup.accelerator.sync_gradients:
            continue
        state.step += 1
        progress.optimizer_step(state.step, result)
        end_of_epoch = state.micro_step == len(setup.train_loader)
        if end_of_epoch:
            state.epoch, state.micro_step = epoch + 1, 0
        if _is_evaluation_step(setup, state, config, end_of_epoch):
            if setup.eval_loader is not None:
                value = evaluate_and_keep_best(setup, state, result, best, config, metrics_fn,
                                               save_best)
                progress.bar.set_postfix({f"val_{config.metric_for_best}": f"{value:.4f}"})
            if state.step < setup.total_steps:  # finished: nothing to resume
                progress.record(result)
                checkpointer.maybe_save(setup.accelerator, state, result, progress.seconds,
                                        config)
            patience = config.early_stopping_patience
            if patience is not None and state.patience >= patience:
                break
        if state.step >= setup.total_steps:
            break
    return _finish(setup, tokenizer, out, state, result, best, progress, config)


def _best_saver(setup: Setup, tokenizer, out: Path | None, result: TrainResult,
                config: TrainConfig) -> Callable:
    """With an output directory, the best model so far is saved there (on the main process)."""
    def save(model) -> None:
        if out and setup.accelerator.is_main_process:
            save_model(model, tokenizer, out, metrics=metrics_record(result, config))
    return save


def _finish(setup: Setup, tokenizer, out: Path | None, state: LoopState, result: TrainResult,
            best: BestModel, progress: Progress, config: TrainConfig) -> TrainResult:
    """Timings, the best weights back into the model, the run's files, ``eval()`` mode."""
    progress.bar.close()
    result.stopped_early = state.step < setup.total_steps
    result.train_seconds += progress.seconds
    result.examples_per_second = progress.examples / progress.seconds if progress.seconds else 0.0
    progress.record(result)
    model = setup.unwrapped()
    best.restore(model)
    if out and setup.accelerator.is_main_process:
        finish_run(model, tokenizer, out, result, config, selected=setup.eval_loader is not None)
    setup.accelerator.wait_for_everyone()  # the others return once the run's files are written
    model.eval()
    return result
