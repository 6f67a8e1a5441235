"""The book's instruction-tuning loop next to TRL's ``SFTTrainer`` (part "Generative models",
chapter "Instruction tuning with LoRA").

:func:`compare_with_trl` trains the same LoRA on the same conversations twice, in one process:
once with the book's loop (:func:`llmbook.training.loop.train`, the answer-only labels of
:mod:`llmbook.generation.instruction`) and once with ``trl.SFTTrainer``, the ecosystem's
reference, given the conversations as prompt/completion pairs so that it too learns only the
answers.  Same learning rate, schedule, warm-up, weight decay, clipping, batch size, one
epoch, same seed.  Both trained models are then scored by the same function on the same
held-out conversations (mean loss over answer tokens), so the two rows differ only by the
trainer.  ``SFTTrainer`` turns on gradient checkpointing by default; it is switched off here
because the book's loop does not use it (it trades compute for memory).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import asdict, replace

from accelerate import Accelerator
from datasets import Dataset
from peft import TaskType
from torch.utils.data import DataLoader
from transformers import PrinterCallback, set_seed
from trl import SFTConfig, SFTTrainer

from llmbook import __version__
from llmbook.core.runs import cached_json
from llmbook.generation.instruction import SftCollator, sft_features, tokenize_for_sft
from llmbook.generation.sft import SftSpec, _drop_gguf_marker, sft_conversations, sft_spec_for
from llmbook.models.adapters import adapt
from llmbook.models.loading import load_generator
from llmbook.training.config import TrainConfig
from llmbook.training.evaluation import evaluate_model
from llmbook.training.loop import train


def heldout_answer_loss(model, tokenizer, validation_set: Dataset, batch_size: int = 16) -> float:
    """Mean cross-entropy over the answer tokens of ``validation_set`` (tokenized by
    :func:`llmbook.generation.instruction.tokenize_for_sft`)."""
    accelerator = Accelerator()
    loader = accelerator.prepare(DataLoader(validation_set, batch_size=batch_size,
                                            collate_fn=SftCollator(tokenizer.pad_token_id)))
    return evaluate_model(model.to(accelerator.device), loader, accelerator, metrics_fn=None
                          )["loss"]


def _lora_model(spec: SftSpec):
    tokenizer, model = load_generator()
    _drop_gguf_marker(model)  # the weights are dequantized: Trainer would refuse a GGUF model
    set_seed(spec.seed)
    return tokenizer, adapt(model, "lora", rank=spec.rank, task=TaskType.CAUSAL_LM)


def _book_row(spec: SftSpec, train_set: Dataset, validation_set: Dataset) -> dict:
    tokenizer, model = _lora_model(spec)
    config = TrainConfig(epochs=1, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                         metric_for_best="loss", seed=spec.seed, progress=False)
    result = train(model, tokenizer, train_set, None, config, metrics_fn=None,
                   collator=SftCollator(tokenizer.pad_token_id))
    tokens = sum(len(ids) for ids in train_set["input_ids"])
    return {"trainer": "book's loop", "steps": result.total_steps,
            "train_seconds": result.train_seconds, "tokens": tokens,
            "heldout_loss": heldout_answer_loss(model, tokenizer, validation_set)}


def _trl_row(spec: SftSpec, conversations: list, validation_set: Dataset) -> dict:
    tokenizer, model = _lora_model(spec)
    pairs = Dataset.from_dict({"prompt": [c[:-1] for c in conversations],
                               "completion": [c[-1:] for c in conversations]})
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SFTTrainer's notes on padding, renamed arguments
        args = SFTConfig(output_dir=out, num_train_epochs=1, learning_rate=spec.learning_rate,
                         per_device_train_batch_size=spec.batch_size, lr_scheduler_type="linear",
                         warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0,
                         max_length=spec.max_length, gradient_checkpointing=False, bf16=False,
                         seed=spec.seed, report_to="none", save_strategy="no",
                         eval_strategy="no", logging_strategy="no", disable_tqdm=True,
                         dataloader_pin_memory=False)
        trainer = SFTTrainer(model=model, args=args, train_dataset=pairs,
                             processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics to stdout
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    return {"trainer": "TRL SFTTrainer", "steps": trainer.state.global_step,
            "train_seconds": seconds, "tokens": tokens,
            "heldout_loss": heldout_answer_loss(trainer.model, tokenizer, validation_set)}


def compare_with_trl(spec: SftSpec, size: int) -> list[dict]:
    """Rows for the book's loop and ``SFTTrainer``: optimizer steps, training seconds,
    training tokens and tokens/s, held-out answer loss (before training too)."""
    spec = replace(spec, method="lora")
    train_conversations, validation_conversations = sft_conversations(spec)
    order = Dataset.from_dict({"i": list(range(len(train_conversations)))}).shuffle(spec.seed)
    chosen = [train_conversations[i] for i in order["i"][:size]]
    tokenizer, base = load_generator()
    kept = [c for c in chosen if sft_features(tokenizer, c, spec.max_length) is not None]
    train_set, _ = tokenize_for_sft(Dataset.from_dict({"messages": kept}), tokenizer,
                                    spec.max_length)
    validation_set, _ = tokenize_for_sft(Dataset.from_dict({"messages": validation_conversations}),
                                         tokenizer, spec.max_length)
    before = heldout_answer_loss(base, tokenizer, validation_set)
    rows = [_book_row(spec, train_set, validation_set), _trl_row(spec, kept, validation_set)]
    for row in rows:
        row["tokens_per_second"] = row["tokens"] / max(row["train_seconds"], 1e-9)
        row["heldout_loss_before"] = before
    return rows


def cached_trl_comparison(profile, refresh: bool = False) -> list[dict]:
    """:func:`compare_with_trl` on ``profile.sft_compare_size`` conversations of the profile's
    LoRA run, stored in ``runs/`` (``refresh`` re-measures)."""
    spec = sft_spec_for(profile, "lora")
    key = {"llmbook": __version__, "spec": asdict(spec), "size": profile.sft_compare_size}
    return cached_json("sft-trl", key, lambda: compare_with_trl(spec, profile.sft_compare_size),
                       refresh=refresh)
