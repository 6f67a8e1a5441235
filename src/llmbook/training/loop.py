"""The training loop of the book (chapter 4 onwards; MLM in chapters 3 and 5; PEFT in 6).

One loop, built on :class:`accelerate.Accelerator`, so the same code runs on a CPU, one GPU or
several (``accelerate launch``).  What it does, in order of a step:

* batches come from :class:`LengthGroupedBatchSampler` -- shuffled, and (by default) grouped
  so each batch holds texts of similar length -- and are padded only to their longest text;
* forward pass (mixed precision on GPU), loss scaled for gradient accumulation;
* with ``adversarial_epsilon`` (chapter 9), a second forward/backward pass at FGM-perturbed
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

import json
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from tqdm.auto import tqdm
from transformers import get_scheduler

from llmbook.core.utils import Timer, set_seed
from llmbook.training.adversarial import adversarial_backward
from llmbook.training.batching import make_collator, make_dataloader
from llmbook.training.config import (
    CHECKPOINT_DIR,
    METRICS_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    TrainConfig,
    TrainResult,
)
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



def _is_better(value: float, best: float | None, greater: bool) -> bool:
    return best is None or (value > best if greater else value < best)



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
    few-shot run has no validation set to select on; chapter 7).  ``step_hooks`` are called
    as ``hook(global_step, model)`` after every optimizer step, before the gradients are
    cleared (AdaLoRA's rank allocation needs them; chapter 6).
    """
    if eval_dataset is None and config.early_stopping_patience is not None:
        raise ValueError("early stopping needs an eval_dataset to watch")
    set_seed(config.seed)
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=_mixed_precision(config.mixed_precision),
    )
    collator = collator or make_collator(tokenizer)
    train_loader = make_dataloader(train_dataset, collator, config.batch_size, shuffle=True,
                                   group_by_length=config.group_by_length, seed=config.seed)
    eval_loader = None if eval_dataset is None else make_dataloader(
        eval_dataset, collator, config.eval_batch_size, shuffle=False, group_by_length=True)
    sampler = train_loader.batch_sampler
    optimizer = make_optimizer(model, config.learning_rate, config.weight_decay)

    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    epochs = math.ceil(total_steps / steps_per_epoch)
    scheduler = get_scheduler(config.scheduler, optimizer,
                              num_warmup_steps=round(config.warmup_ratio * total_steps),
                              num_training_steps=total_steps * accelerator.num_processes)
    model, optimizer, train_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, scheduler
    )
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)

    result = TrainResult(total_steps=total_steps, output_dir=config.output_dir)
    out = Path(config.output_dir) if config.output_dir else None
    state = {"step": 0, "epoch": 0, "micro_step": 0, "best": None, "patience": 0}
    if out and config.resume and (out / CHECKPOINT_DIR / STATE_FILE).exists():
        accelerator.load_state(str(out / CHECKPOINT_DIR))
        saved = json.loads((out / CHECKPOINT_DIR / STATE_FILE).read_text())
        state, result = saved["state"], TrainResult(**saved["result"])
    # the best weights so far: after a resume, the ones saved before the interruption
    best_weights = None
    if state["best"] is not None and (out / WEIGHTS_FILE).exists():
        best_weights = load_file(out / WEIGHTS_FILE)
    eval_every = config.eval_every or steps_per_epoch
    # without an explicit ``disable``, tqdm honours TQDM_DISABLE=1 (set by `make book`)
    quiet = {} if config.progress and accelerator.is_local_main_process else {"disable": True}
    bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step", **quiet)
    running_loss, running_count, examples = 0.0, 0, 0
    model.train()
    step_timer_seconds = checkpointed_at = 0.0

    def keep_if_best() -> None:
        """Evaluate; keep (and save) the weights when they are the best so far."""
        nonlocal best_weights
        metrics = evaluate_model(model, eval_loader, accelerator, metrics_fn)
        row = {"step": state["step"], "epoch": state["step"] / steps_per_epoch,
               **{f"eval_{k}": v for k, v in metrics.items()}}
        result.eval_log.append(row)
        value = metrics[config.metric_for_best]
        if _is_better(value, state["best"], config.greater_is_better):
            state["best"], state["patience"] = value, 0
            result.best_metrics, result.best_step = metrics, state["step"]
            unwrapped = accelerator.unwrap_model(model)
            best_weights = {k: v.detach().to("cpu", copy=True)
                            for k, v in unwrapped.state_dict().items()}
            if out and accelerator.is_main_process:
                save_model(unwrapped, tokenizer, out, metrics=_metrics_record(result, config))
        else:
            state["patience"] += 1
        bar.set_postfix({f"val_{config.metric_for_best}": f"{value:.4f}"})

    def evaluate_and_checkpoint() -> bool:
        """Evaluate (with an eval set), checkpoint unless finished; True to stop early."""
        nonlocal checkpointed_at
        if eval_loader is not None:
            keep_if_best()
        worth_it = step_timer_seconds - checkpointed_at >= config.checkpoint_min_seconds
        if out and worth_it and state["step"] < total_steps:  # finished: nothing to resume
            checkpointed_at = step_timer_seconds
            accelerator.save_state(str(out / CHECKPOINT_DIR))
            if accelerator.is_main_process:
                (out / CHECKPOINT_DIR / STATE_FILE).write_text(
                    json.dumps({"state": state, "result": asdict(result)})
                )
        patience = config.early_stopping_patience
        return patience is not None and state["patience"] >= patience

    stop = False
    for epoch in range(state["epoch"], epochs):
        # accelerate's loader re-seeds its sampler from its own epoch counter: keep both in step
        train_loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = train_loader
        if state["micro_step"]:
            loader = accelerator.skip_first_batches(train_loader, state["micro_step"])
        for batch in loader:
            with Timer() as timer, accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if config.adversarial_epsilon:
                    adversarial_backward(model, batch, config.adversarial_epsilon,
                                         accelerator.backward, accelerator.unwrap_model(model)
                                         .get_input_embeddings().weight)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                if accelerator.sync_gradients:  # gradients are still there (AdaLoRA reads them)
                    for hook in step_hooks:
                        hook(state["step"] + 1, accelerator.unwrap_model(model))
                optimizer.zero_grad()
            step_timer_seconds += timer.seconds
            state["micro_step"] += 1
            examples += batch["input_ids"].shape[0]
            running_loss += loss.item()
            running_count += 1
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            bar.update(1)
            if state["step"] % config.log_every == 0 or state["step"] == total_steps:
                result.train_log.append({
                    "step": state["step"], "epoch": state["step"] / steps_per_epoch,
                    "loss": running_loss / running_count, "lr": scheduler.get_last_lr()[0],
                })
                bar.set_postfix(loss=f"{running_loss / running_count:.4f}")
                running_loss, running_count = 0.0, 0
            end_of_epoch = state["micro_step"] == len(train_loader)
            if end_of_epoch:
                state["epoch"], state["micro_step"] = epoch + 1, 0
            at_epoch_end = end_of_epoch and config.eval_every is None
            if state["step"] % eval_every == 0 or state["step"] == total_steps or at_epoch_end:
                stop = evaluate_and_checkpoint()
            if stop or state["step"] >= total_steps:
                stop = True
                break
        if stop:
            break
    bar.close()
    result.stopped_early = state["step"] < total_steps
    result.train_seconds += step_timer_seconds
    result.examples_per_second = examples / step_timer_seconds if step_timer_seconds else 0.0
    unwrapped = accelerator.unwrap_model(model)
    if best_weights is not None:
        _, unexpected = unwrapped.load_state_dict(best_weights, strict=False)
        if unexpected:
            raise RuntimeError(f"best checkpoint does not match the model: {unexpected[:5]}")
    if out and accelerator.is_main_process:
        if eval_loader is None:  # nothing was selected: save the final weights
            save_model(unwrapped, tokenizer, out)
        (out / METRICS_FILE).write_text(json.dumps(_metrics_record(result, config), indent=2))
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)  # finished: nothing to resume
    unwrapped.eval()
    return result



def _metrics_record(result: TrainResult, config: TrainConfig) -> dict:
    return {
        "best_validation": result.best_metrics,
        "best_step": result.best_step,
        "total_steps": result.total_steps,
        "train_seconds": result.train_seconds,
        "examples_per_second": result.examples_per_second,
        "stopped_early": result.stopped_early,
        "config": asdict(config),
        "train_log": result.train_log,
        "eval_log": result.eval_log,
    }



def save_model(model, tokenizer, directory: Path, metrics: dict | None = None) -> None:
    """Write safetensors weights, config, tokenizer and (optionally) ``metrics.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    if metrics is not None:
        (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
