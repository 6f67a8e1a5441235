"""Parameter-efficient fine-tuning: LoRA, AdaLoRA, prefix, prompt and IA3 (chapter 10).

Chapters 11-13 reuse it through a fine-tuning spec's :class:`AdapterSpec`.  Every method
freezes the
pretrained encoder and trains a small set of new parameters plus the classification head
(the head is new, so it always trains; `peft` calls it a module to save).

* ``lora``, ``adalora``, ``prompt``, ``ia3`` come from the `peft` library.  AdaLoRA re-allocates
  its rank budget during training: :func:`step_hooks` returns the hook that calls
  ``update_and_allocate`` after every optimizer step of the shared loop.
* ``prefix``: `peft`'s prefix tuning needs a model that accepts ``past_key_values``, which BERT
  classifiers in transformers 5 no longer do, so :class:`PrefixTuning` implements it here
  (Li and Liang, 2021): learned keys and values are put in front of every layer's own.

An adapted model is saved as its small adapter (plus the tokenizer) and :func:`load_adapted`
rebuilds it from the base model; :func:`merge_for_deployment` folds LoRA/IA3 weights back into
the base model, giving a plain ``transformers`` classifier.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import (
    AdaLoraConfig,
    IA3Config,
    LoraConfig,
    PeftModel,
    PromptTuningConfig,
    TaskType,
    get_peft_model,
)
from peft.tuners.adalora import AdaLoraModel
from safetensors.torch import load_file, save_file
from torch import nn

from llmbook.core.durable import atomic_write_text
from llmbook.models.loading import load_classifier

METHODS = ("full", "lora", "adalora", "prefix", "prompt", "ia3")

#: Written next to the adapter weights: which method and base model to rebuild it from.
ADAPTER_RECORD = "llmbook_adapter.json"

PREFIX_WEIGHTS = "prefix_model.safetensors"


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    return method


@dataclass(frozen=True)
class AdapterSpec:
    """Which weights a fine-tuning run trains: ``"full"`` (all of them) or one of the
    parameter-efficient ``METHODS``, with ``rank`` for (Ada)LoRA (chapter 10)."""

    method: str = "full"
    rank: int = 8

    def __post_init__(self):
        check_method(self.method)

    @property
    def is_full(self) -> bool:
        return self.method == "full"

    def apply(self, model, total_steps: int | None = None):
        """``model`` adapted by this spec (:func:`adapt`)."""
        return adapt(model, self.method, rank=self.rank, total_steps=total_steps)


def peft_config(method: str, *, rank: int = 8, total_steps: int | None = None,
                virtual_tokens: int = 10, task: TaskType = TaskType.SEQ_CLS):
    """The `peft` configuration of ``method`` for a BERT-style sequence classifier, or, with
    ``task=TaskType.CAUSAL_LM`` (LoRA only), for a decoder such as SmolLM2: then `peft` picks
    the matrices it adapts by architecture (query and value projections, ``q_proj`` and
    ``v_proj`` in Llama-style models) and there is no head to train."""
    if task == TaskType.CAUSAL_LM:
        if method != "lora":
            raise ValueError(f"causal-LM adapters are LoRA only here, not {method!r}")
        return LoraConfig(task_type=task, r=rank, lora_alpha=2 * rank, lora_dropout=0.1)
    if method == "lora":
        return LoraConfig(task_type=task, r=rank, lora_alpha=2 * rank, lora_dropout=0.1,
                          target_modules=["query", "value"])
    if method == "adalora":
        if not total_steps:
            raise ValueError("AdaLoRA needs total_steps for its rank-budget schedule")
        # start at 1.5x the rank, end at half of it; warm-up and final phases of 10% each
        return AdaLoraConfig(task_type=task, init_r=math.ceil(1.5 * rank),
                             target_r=max(1, rank // 2), lora_alpha=2 * rank,
                             target_modules=["query", "value"], total_step=total_steps,
                             tinit=total_steps // 10, tfinal=total_steps // 10,
                             deltaT=max(1, total_steps // 20))
    if method == "prompt":
        return PromptTuningConfig(task_type=task, num_virtual_tokens=virtual_tokens)
    if method == "ia3":
        return IA3Config(task_type=task, target_modules=["key", "value", "output.dense"],
                         feedforward_modules=["output.dense"])
    raise ValueError(f"{method!r} is not a peft-library method")


class _PrefixCache:
    """Stands in for a key/value cache: every layer's keys and values get the prefix in front."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys, self.values = keys, values  # (layers, heads, prefix, head_dim)

    def update(self, key, value, layer_idx, **_):
        batch = key.shape[0]
        prefix_keys = self.keys[layer_idx].unsqueeze(0).expand(batch, -1, -1, -1)
        prefix_values = self.values[layer_idx].unsqueeze(0).expand(batch, -1, -1, -1)
        return torch.cat([prefix_keys, key], dim=2), torch.cat([prefix_values, value], dim=2)


def _extend_mask(mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """Let every query attend to the ``length`` prefix positions (4-D bool or additive mask)."""
    if mask is None:
        return None
    shape = (*mask.shape[:-1], length)
    pad = (torch.ones(shape, dtype=torch.bool, device=mask.device) if mask.dtype == torch.bool
           else torch.zeros(shape, dtype=mask.dtype, device=mask.device))
    return torch.cat([pad, mask], dim=-1)


class PrefixTuning(nn.Module):
    """A frozen BERT-style classifier with learned key/value prefixes in every layer.

    Trainable: ``prefix`` (layers x 2 x virtual_tokens x hidden) and the classification head.
    The prefix is injected through each self-attention's cache argument, so positions and
    the model's own code are untouched.
    """

    def __init__(self, model, virtual_tokens: int = 10):
        super().__init__()
        config = model.config
        self.model, self.virtual_tokens = model, virtual_tokens
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.heads
        layers = config.num_hidden_layers
        self.prefix = nn.Parameter(
            0.02 * torch.randn(layers, 2, self.heads, virtual_tokens, self.head_dim))
        for name, parameter in model.named_parameters():
            parameter.requires_grad = name.startswith(_head_prefix(model))
        attentions = [m for m in model.modules() if type(m).__name__.endswith("SelfAttention")]
        if len(attentions) != layers:
            raise ValueError(f"prefix tuning supports BERT-style encoders; found {len(attentions)}"
                             f" self-attention modules for {layers} layers")
        for attention in attentions:
            attention.register_forward_pre_hook(self._inject, with_kwargs=True)

    @property
    def config(self):
        return self.model.config

    def _inject(self, module, args, kwargs):
        kwargs["cache"] = _PrefixCache(self.prefix[:, 0], self.prefix[:, 1])
        kwargs["attention_mask"] = _extend_mask(kwargs.get("attention_mask"),
                                                self.virtual_tokens)
        return args, kwargs

    def forward(self, **batch):
        return self.model(**batch)

    def save_pretrained(self, directory) -> None:
        """Only the trained tensors: the prefix and the classification head."""
        trainable = {name: p.detach().contiguous() for name, p in self.named_parameters()
                     if p.requires_grad}
        save_file(trainable, str(Path(directory) / PREFIX_WEIGHTS))

    def load_trained(self, directory) -> None:
        missing, unexpected = self.load_state_dict(load_file(Path(directory) / PREFIX_WEIGHTS),
                                                   strict=False)
        if unexpected:
            raise ValueError(f"{directory} holds tensors this model lacks: {unexpected[:3]}")


def _head_prefix(model) -> str:
    return "classifier" if hasattr(model, "classifier") else "score"


def adapt(model, method: str, *, rank: int = 8, total_steps: int | None = None,
          virtual_tokens: int = 10, task: TaskType = TaskType.SEQ_CLS):
    """``model`` with ``method`` applied: only the new parameters (and a classifier's head)
    train.  ``task`` is the model's kind (see :func:`peft_config`)."""
    check_method(method)
    if method == "full":
        return model
    if method == "prefix":
        return PrefixTuning(model, virtual_tokens)

    return get_peft_model(model, peft_config(method, rank=rank, total_steps=total_steps,
                                             virtual_tokens=virtual_tokens, task=task))


def step_hooks(model) -> list[Callable[[int, nn.Module], None]]:
    """Hooks the shared loop calls after each optimizer step: AdaLoRA's budget allocation."""
    base = getattr(model, "base_model", None)
    if isinstance(base, AdaLoraModel):
        return [lambda step, m: m.base_model.update_and_allocate(step)]
    return []


def adalora_ranks(model) -> dict[str, int]:
    """Rank AdaLoRA allocates to each adapted matrix: its initial budget until the allocator
    has decided (``rank_pattern``), then the number of singular values it kept.  Keys are the
    matrices' names (``...query.lora_E``), as in a saved adapter's ``rank_pattern``."""
    pattern = {key.removesuffix(".default"): kept
               for key, kept in (model.active_peft_config.rank_pattern or {}).items()}
    ranks = {}
    for name, parameter in model.named_parameters():
        if name.endswith("lora_E.default"):
            key = name.removeprefix("base_model.model.").removesuffix(".default")
            ranks[key] = sum(pattern[key]) if key in pattern else parameter.numel()
    return ranks


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (AdaLoRA's orthogonality buffers excluded)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def save_record(directory, method: str, base_model: str, **options) -> None:
    """Write :data:`ADAPTER_RECORD`, so :func:`load_adapted` can rebuild the model."""
    record = {"method": method, "base_model": base_model, **options}
    atomic_write_text(Path(directory) / ADAPTER_RECORD, json.dumps(record, indent=2))


def is_adapter_dir(directory) -> bool:
    return (Path(directory) / ADAPTER_RECORD).exists()


def load_adapted(directory, num_labels: int = 2):
    """The adapted classifier saved in ``directory`` (base model + adapter), in eval mode."""
    directory = Path(directory)
    record = json.loads((directory / ADAPTER_RECORD).read_text())
    base = load_classifier(num_labels=num_labels, name=record["base_model"])
    if record["method"] == "prefix":
        model = PrefixTuning(base, record.get("virtual_tokens", 10))
        model.load_trained(directory)
    else:
        with warnings.catch_warnings():
            # AdaLoRA saves rank_pattern keys without the adapter name and peft warns that they
            # match no module; the masked singular values are stored as zeros, so nothing is lost
            warnings.filterwarnings("ignore", message="The following rank_pattern keys")
            model = PeftModel.from_pretrained(base, directory)
    return model.eval()


def merge_for_deployment(model):
    """A plain ``transformers`` classifier with the LoRA/IA3/AdaLoRA weights folded in."""
    config = getattr(model, "active_peft_config", None)
    if config is None or config.is_prompt_learning:
        raise ValueError("only weight adapters (LoRA, AdaLoRA, IA3) can be merged; prefix and "
                         "prompt tuning add virtual tokens that stay separate")
    return model.merge_and_unload()


def adapter_bytes(directory) -> int:
    """Size on disk of the saved weights (the adapter for PEFT methods, the model otherwise)."""
    return sum(f.stat().st_size for f in Path(directory).glob("*.safetensors"))
