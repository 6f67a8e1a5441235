"""Foundations: loading the book's models (the packaged MiniLM, hub models), parameter-efficient
adapters on top of them (chapter 6), sentence embeddings, and loading a trained classifier for
inference."""

from llmbook.models.adapters import (
    ADAPTER_RECORD,
    METHODS,
    PREFIX_WEIGHTS,
    PrefixTuning,
    adalora_ranks,
    adapt,
    adapter_bytes,
    check_method,
    count_parameters,
    is_adapter_dir,
    load_adapted,
    merge_for_deployment,
    peft_config,
    save_record,
    step_hooks,
)
from llmbook.models.embeddings import (
    embed_texts,
    mean_pool,
)
from llmbook.models.inference import (
    load_for_inference,
    predict_proba,
)
from llmbook.models.loading import (
    ENCODER_PACKAGE,
    PACKAGED_ENCODER,
    LoadReport,
    ModelUnavailableError,
    load_classifier,
    load_encoder,
    load_mlm,
    load_tokenizer,
    packaged_encoder_dir,
    resolve_model,
)

__all__ = [
    "ADAPTER_RECORD",
    "ENCODER_PACKAGE",
    "LoadReport",
    "METHODS",
    "ModelUnavailableError",
    "PACKAGED_ENCODER",
    "PREFIX_WEIGHTS",
    "PrefixTuning",
    "adalora_ranks",
    "adapt",
    "adapter_bytes",
    "check_method",
    "count_parameters",
    "embed_texts",
    "is_adapter_dir",
    "load_adapted",
    "load_classifier",
    "load_encoder",
    "load_for_inference",
    "load_mlm",
    "load_tokenizer",
    "mean_pool",
    "merge_for_deployment",
    "packaged_encoder_dir",
    "peft_config",
    "predict_proba",
    "resolve_model",
    "save_record",
    "step_hooks",
]
