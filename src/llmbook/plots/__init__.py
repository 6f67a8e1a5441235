"""The book's figures, one module per part; every function returns a matplotlib Figure."""

from llmbook.plots.adaptation import (
    plot_accuracy_matrix,
    plot_learning_curves,
    plot_peft_tradeoff,
    plot_rank_allocation,
    plot_stages,
    plot_threshold_tradeoff,
)
from llmbook.plots.deployment import (
    plot_capacity,
    plot_latency_accuracy,
    plot_stream_load,
)
from llmbook.plots.diagrams import (
    plot_distillation,
    plot_lora_update,
    plot_masking,
    plot_prompt_tuning,
    plot_serving_path,
)
from llmbook.plots.foundations import (
    CONCEPT_EDGES,
    plot_attention_head,
    plot_class_balance,
    plot_concept_map,
    plot_encoder_layer,
    plot_length_histograms,
    plot_masks,
    plot_positions,
)
from llmbook.plots.generation import (
    plot_kv_cache_timing,
    plot_temperature_tradeoff,
)
from llmbook.plots.responsible import (
    plot_attention_maps,
    plot_precision_coverage,
    plot_projection,
    plot_sentiment_index,
    plot_token_attributions,
)
from llmbook.plots.training import (
    plot_confusion_matrix,
    plot_lr_schedules,
    plot_lr_sweep,
    plot_results,
    plot_seed_comparison,
    plot_sweep,
    plot_training_curves,
)

__all__ = [
    "CONCEPT_EDGES",
    "plot_accuracy_matrix",
    "plot_attention_head",
    "plot_attention_maps",
    "plot_capacity",
    "plot_class_balance",
    "plot_concept_map",
    "plot_confusion_matrix",
    "plot_distillation",
    "plot_encoder_layer",
    "plot_kv_cache_timing",
    "plot_latency_accuracy",
    "plot_learning_curves",
    "plot_length_histograms",
    "plot_lora_update",
    "plot_lr_schedules",
    "plot_lr_sweep",
    "plot_masking",
    "plot_masks",
    "plot_peft_tradeoff",
    "plot_positions",
    "plot_precision_coverage",
    "plot_projection",
    "plot_prompt_tuning",
    "plot_rank_allocation",
    "plot_results",
    "plot_seed_comparison",
    "plot_sentiment_index",
    "plot_serving_path",
    "plot_stages",
    "plot_stream_load",
    "plot_sweep",
    "plot_temperature_tradeoff",
    "plot_threshold_tradeoff",
    "plot_token_attributions",
    "plot_training_curves",
]
