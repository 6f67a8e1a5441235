"""Instruction-tuning runs of SmolLM2-135M-Instruct (part "Generative models", chapter
"Instruction tuning with LoRA").

:func:`instruction_tune` trains the packaged SmolLM2 on a mixture of the three instruction
sets of :mod:`llmbook.generation.instruction_sets` -- sentiment questions and writing requests
on Rotten Tomatoes *training* snippets, and the support desk's trained phrasings -- with LoRA
(``method="lora"``, the query and value projections) or every weight (``"full"``), through the
book's shared loop: answer-only loss (:mod:`llmbook.generation.instruction`), held-out loss on
Rotten Tomatoes *validation* conversations, the best evaluation kept.  Runs are cached in
``runs/`` by configuration; :func:`load_tuned` rebuilds the tuned model and
:func:`export_tuned` writes it as a plain model directory (``llmbook sft --export DIR``).
:func:`generate_answers` is how every set is answered (``model.generate``, batched, left-padded).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from datasets import Dataset
from peft import PeftModel, TaskType
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

from llmbook import __version__
from llmbook.core.runs import Run, cached_run
from llmbook.data.corpora import load_sentiment, subsample
from llmbook.generation.instruction import SftCollator, chat_prompt, tokenize_for_sft
from llmbook.generation.instruction_sets import (
    sentiment_conversations,
    support_conversations,
    writing_conversations,
)
from llmbook.models.adapters import adapt, count_parameters
from llmbook.models.loading import load_generator
from llmbook.training.config import TrainConfig
from llmbook.training.loop import train

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class SftSpec:
    """Everything that determines an instruction-tuning run (and its cache key)."""

    method: str = "lora"
    sentiment_size: int = 600
    writing_size: int = 300
    support_repeats: int = 2
    support_open_book: bool = True
    validation_size: int = 100
    max_length: int = 192
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 2e-4
    rank: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.method not in ("lora", "full"):
            raise ValueError(f"method is 'lora' or 'full', not {self.method!r}")


def sft_spec_for(profile, method: str = "lora", **overrides) -> SftSpec:
    """The profile's instruction-tuning sizes (``sft_*`` fields); full fine-tuning at a
    tenth of LoRA's learning rate."""
    spec = SftSpec(method=method, sentiment_size=profile.sft_sentiment_size,
                   writing_size=profile.sft_writing_size,
                   support_repeats=profile.sft_support_repeats,
                   validation_size=profile.sft_validation_size, epochs=profile.sft_epochs,
                   learning_rate=profile.sft_lora_rate if method == "lora"
                   else profile.sft_lora_rate / 10)
    return replace(spec, **overrides)


def sft_conversations(spec: SftSpec) -> tuple[list[list[dict]], list[list[dict]]]:
    """``(training, validation)`` conversations: disjoint Rotten Tomatoes training snippets
    for sets 1 and 2 plus set 3's trained phrasings (closed book, and with
    ``spec.support_open_book`` once more with their knowledge-base entry in the system
    message); validation snippets for sets 1 and 2."""
    splits = load_sentiment("rotten_tomatoes")
    size = spec.sentiment_size + spec.writing_size  # 0 in a support-only run
    pool = subsample(splits["train"], size, seed=spec.seed) if size else splits["train"].select([])
    pool = pool.shuffle(seed=spec.seed)
    sentiment = pool.select(range(spec.sentiment_size))
    writing = pool.select(range(spec.sentiment_size, len(pool)))
    train = (sentiment_conversations(sentiment["text"], sentiment["label"])
             + writing_conversations(writing["text"], writing["label"])
             + support_training(spec) * spec.support_repeats)
    held = subsample(splits["validation"], spec.validation_size, seed=spec.seed)
    validation = (sentiment_conversations(held["text"], held["label"])
                  + writing_conversations(held["text"], held["label"]))
    return train, validation


def instruction_tune(spec: SftSpec, out: str | Path | None = None, force: bool = False) -> Run:
    """Run (or load from the ``runs/`` cache) the instruction tuning ``spec`` describes."""
    key = {"llmbook": __version__, "objective": "sft", **asdict(spec)}
    return cached_run("sft", key, lambda directory: _sft_run(spec, directory), out, force,
                      loader=load_tuned)


def _as_dataset(conversations, tokenizer, max_length: int) -> tuple[Dataset, int]:
    return tokenize_for_sft(Dataset.from_dict({"messages": conversations}), tokenizer,
                            max_length)


def sft_datasets(spec: SftSpec, tokenizer) -> tuple[Dataset, Dataset, int]:
    """Tokenized training and validation sets of :func:`sft_conversations`, and how many
    training conversations were dropped for being longer than ``spec.max_length``."""
    train_conversations, validation_conversations = sft_conversations(spec)
    train_set, dropped = _as_dataset(train_conversations, tokenizer, spec.max_length)
    validation_set, _ = _as_dataset(validation_conversations, tokenizer, spec.max_length)
    return train_set, validation_set, dropped


def _sft_run(spec: SftSpec, directory: Path) -> dict:
    """SmolLM2, LoRA-adapted or not, trained on the answers of the training conversations."""
    tokenizer, model = load_generator()
    train_set, validation_set, dropped = sft_datasets(spec, tokenizer)
    set_seed(spec.seed)
    if spec.method == "lora":
        model = adapt(model, "lora", rank=spec.rank, task=TaskType.CAUSAL_LM)
    else:
        _drop_gguf_marker(model)
    trainable, total = count_parameters(model)
    config = TrainConfig(epochs=spec.epochs, batch_size=spec.batch_size, eval_batch_size=16,
                         learning_rate=spec.learning_rate, metric_for_best="loss",
                         seed=spec.seed, output_dir=str(directory), log_every=5)
    with warnings.catch_warnings():
        # saving an adapter of a model read from a GGUF file: peft finds no config.json beside
        # it and says it assumes an unchanged vocabulary, which is the case
        warnings.filterwarnings("ignore", message="Could not find a config file")
        result = train(model, tokenizer, train_set, validation_set, config, metrics_fn=None,
                       collator=SftCollator(tokenizer.pad_token_id))
    tokens = sum(len(ids) for ids in train_set["input_ids"])
    answer_tokens = sum(sum(label != -100 for label in row) for row in train_set["labels"])
    epochs_run = result.total_steps / max(1, -(-len(train_set) // spec.batch_size))
    return dict(train_examples=len(train_set), dropped_for_length=dropped,
                trainable_parameters=trainable, parameters=total,
                answer_token_share=answer_tokens / tokens,
                tokens_per_second=tokens * epochs_run / max(result.train_seconds, 1e-9))


def _drop_gguf_marker(model) -> None:
    """transformers marks a model read from a GGUF file as quantized and refuses to save it;
    its weights were dequantised to float32 on loading, so the marker goes and a fully tuned
    model saves like any other."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_tuned(directory: str | Path):
    """``(tokenizer, model)`` of a finished run: SmolLM2 plus the LoRA adapter, or the fully
    tuned weights; in eval mode, left padding for batched generation."""
    directory = Path(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if (directory / ADAPTER_CONFIG).exists():
        _, base = load_generator()
        model = PeftModel.from_pretrained(base, directory)
    else:
        model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer.padding_side = "left"
    return tokenizer, model.eval()


@torch.inference_mode()
def export_tuned(directory: str | Path, out: str | Path) -> Path:
    """Write a finished run as one plain causal-LM directory (a LoRA adapter merged into its
    base): what ``llmbook serve --generate`` and ``llmbook generate --model`` load."""
    tokenizer, model = load_tuned(directory)
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    _drop_gguf_marker(model)
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def generate_answers(model, tokenizer, conversations, max_new_tokens: int = 8,
                     batch_size: int = 16, seed: int = 0, **settings) -> list[str]:
    """The assistant's reply to each conversation (greedy unless ``settings`` sample; each
    batch re-seeded with ``seed`` + its index), without the template's end-of-turn token."""
    tokenizer.padding_side = "left"
    answers = []
    for i in range(0, len(conversations), batch_size):
        prompts = [chat_prompt(tokenizer, c) for c in conversations[i:i + batch_size]]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seed + i)
        out = model.generate(**batch, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, **settings)
        answers += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:],
                                          skip_special_tokens=True)
    return [answer.strip() for answer in answers]


def support_training(spec: SftSpec) -> list[list[dict]]:
    """Set 3's trained phrasings once closed book and, with ``spec.support_open_book``, once
    open book with the right entry (what retrieval returns for an indexed phrasing)."""
    closed, facts = support_conversations()
    return closed + (support_conversations(entries=facts)[0] if spec.support_open_book else [])


def mixture_sizes(spec: SftSpec) -> dict[str, int]:
    """How many training conversations each instruction set contributes."""
    return {"sentiment": spec.sentiment_size, "writing": spec.writing_size,
            "support desk": len(support_training(spec)) * spec.support_repeats}

