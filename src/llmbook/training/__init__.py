"""The shared training loop of chapter 4 (used by chapters 3-10): configuration, batching,
optimizer and schedule, evaluation, checkpoint and resume, adversarial training (chapter 9) and
text augmentation (chapter 9)."""

from llmbook.training.adversarial import adversarial_backward
from llmbook.training.augmentation import (
    METHODS,
    STOPWORDS,
    Augmenter,
    EmbeddingNeighbours,
    MaskedLMSubstituter,
    augment_dataset,
    eda,
    eda_augmenter,
    is_content_word,
    make_augmenter,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)
from llmbook.training.batching import (
    LengthGroupedBatchSampler,
    make_collator,
    make_dataloader,
)
from llmbook.training.config import (
    CHECKPOINT_DIR,
    IGNORE_INDEX,
    METRICS_FILE,
    PRESENTATION_FIELDS,
    STATE_FILE,
    WEIGHTS_FILE,
    TrainConfig,
    TrainResult,
)
from llmbook.training.evaluation import (
    classification_eval,
    classification_metrics,
    evaluate_classifier,
    evaluate_model,
)
from llmbook.training.loop import (
    save_model,
    train,
)
from llmbook.training.optim import (
    make_optimizer,
    parameter_groups,
    schedule_lrs,
)

__all__ = [
    "Augmenter",
    "CHECKPOINT_DIR",
    "EmbeddingNeighbours",
    "IGNORE_INDEX",
    "LengthGroupedBatchSampler",
    "METHODS",
    "METRICS_FILE",
    "MaskedLMSubstituter",
    "PRESENTATION_FIELDS",
    "STATE_FILE",
    "STOPWORDS",
    "TrainConfig",
    "TrainResult",
    "WEIGHTS_FILE",
    "adversarial_backward",
    "augment_dataset",
    "classification_eval",
    "classification_metrics",
    "eda",
    "eda_augmenter",
    "evaluate_classifier",
    "evaluate_model",
    "is_content_word",
    "make_augmenter",
    "make_collator",
    "make_dataloader",
    "make_optimizer",
    "parameter_groups",
    "random_deletion",
    "random_insertion",
    "random_swap",
    "save_model",
    "schedule_lrs",
    "synonym_replacement",
    "train",
]
