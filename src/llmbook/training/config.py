"""What one training run is (chapter 9): :class:`TrainConfig`, :class:`TrainResult` and the
files a run writes (``metrics.json`` is :data:`llmbook.core.runs.METRICS_FILE`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from llmbook.core.runs import CHECKPOINT_DIR as CHECKPOINT_DIR  # the run directory's layout
from llmbook.core.runs import drop_unset

STATE_FILE = "trainer_state.json"

WEIGHTS_FILE = "model.safetensors"

#: :class:`TrainConfig` fields that change how a run is shown or stored, not its result
PRESENTATION_FIELDS = ("output_dir", "resume", "progress", "log_every", "checkpoint_min_seconds")

#: fields added after runs were cached, with their defaults: left out of
#: :meth:`TrainConfig.result_fields` at the default so that the keys of earlier runs hold
ADDED_FIELDS = {"consistency_weight": 0.0}


@dataclass
class TrainConfig:
    """Everything the loop needs besides the model and data.  Sizes count optimizer steps."""

    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    scheduler: str = "linear"
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    gradient_accumulation_steps: int = 1
    group_by_length: bool = True
    eval_every: int | None = None
    metric_for_best: str = "accuracy"
    early_stopping_patience: int | None = None
    #: FGM adversarial training (chapter 13): L2 size of the word-embedding perturbation; 0 = off
    adversarial_epsilon: float = 0.0
    #: R-Drop consistency (learning from unlabelled data): weight of the KL between two
    #: dropout passes (:mod:`llmbook.training.consistency`); 0 = off, one pass per batch
    consistency_weight: float = 0.0
    mixed_precision: str | None = None
    seed: int = 0
    log_every: int = 10
    output_dir: str | None = None
    resume: bool = False
    #: write the resumable training state at an evaluation only after this many seconds of
    #: training since the last one: a short run is cheaper to redo than to checkpoint
    checkpoint_min_seconds: float = 60.0
    progress: bool = True

    def __post_init__(self):
        if self.epochs < 1 and not self.max_steps:
            raise ValueError("train for at least one epoch or set max_steps")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("batch_size and gradient_accumulation_steps must be >= 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.adversarial_epsilon < 0:
            raise ValueError(f"adversarial_epsilon must be >= 0, got {self.adversarial_epsilon}")
        if self.consistency_weight < 0:
            raise ValueError(f"consistency_weight must be >= 0, got {self.consistency_weight}")

    @property
    def greater_is_better(self) -> bool:
        return "loss" not in self.metric_for_best

    def result_fields(self) -> dict:
        """The fields that determine the trained weights (for cache keys)."""
        fields = {k: v for k, v in asdict(self).items() if k not in PRESENTATION_FIELDS}
        return drop_unset(fields, ADDED_FIELDS)


@dataclass
class TrainResult:
    """What a run returns: logs for plots, the best validation metrics and timings."""

    train_log: list[dict] = field(default_factory=list)
    eval_log: list[dict] = field(default_factory=list)
    best_metrics: dict = field(default_factory=dict)
    best_step: int = 0
    total_steps: int = 0
    train_seconds: float = 0.0
    examples_per_second: float = 0.0
    stopped_early: bool = False
    output_dir: str | None = None
    #: the optimizer step an interrupted run was continued from (None: it ran in one go)
    resumed_at_step: int | None = None
    #: examples trained on, by all processes together (a resumed run counts the first part)
    examples_seen: int = 0
    num_processes: int = 1


IGNORE_INDEX = -100  # label of positions that carry no loss (padding, unmasked MLM tokens)
