"""One training run of :mod:`test_multiprocess`, started by ``torchrun`` with 1 or 2 processes.

``python -m torch.distributed.run --nproc_per_node N multiprocess_train.py MODEL_DIR OUT
[--resume-check]``: a tiny classifier (dropout off) evaluated untrained, then trained for two
epochs on a learnable toy task into ``OUT/run``; with ``--resume-check`` the same run is also
interrupted after step 5 and resumed in ``OUT/resumed``.  Each process writes what it saw to
``OUT/rank<R>.json``: the examples in each of its micro-batches, the logs, how often it called
the loop's writers; the first process also saves the final weights to ``OUT/final.pt``.
"""

import json
import random
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, set_seed

import llmbook.training.loop as loop
from llmbook.data import tokenize_dataset
from llmbook.models import load_tokenizer
from llmbook.training import (
    TrainConfig,
    classification_metrics,
    evaluate_model,
    make_collator,
    prepare,
    train,
)

FILLER = "the a movie film plot actor scene story was is it this".split()
TRAIN_EXAMPLES, EVAL_EXAMPLES = 96, 37  # 6 global batches of 16; eval batches of 8, then 5
EVAL_FIRST = 1000  # evaluation examples are numbered from here: the collator sees both
CONFIG = dict(epochs=2, batch_size=16, eval_batch_size=8, learning_rate=3e-3, log_every=1,
              progress=False, warmup_ratio=0.1, checkpoint_min_seconds=0.0)


def toy_dataset(tokenizer, n: int, seed: int, first: int = 0) -> Dataset:
    """Label 1 iff the text says 'good', amid filler of random length; ``example`` numbers the
    examples from ``first``."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 12))]
        words.insert(rng.randint(0, len(words)), "good" if i % 2 else "bad")
        texts.append(" ".join(words))
    dataset = Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(n)]})
    return tokenize_dataset(dataset, tokenizer, max_length=32).add_column("example",
                                                                      range(first, first + n))


class RecordingCollator:
    """Pads like the loop's collator and notes which examples each micro-batch holds."""

    def __init__(self, tokenizer):
        self.collate, self.batches = make_collator(tokenizer), []

    def __call__(self, features):
        self.batches.append([feature.pop("example") for feature in features])
        return self.collate(features)


class Interrupt(Exception):
    pass


def interrupt_at_step_5(step, _model):
    if step == 5:
        raise Interrupt


def count_calls(counts: dict, name: str):
    """Replace the loop's writer ``name`` by one that counts its calls."""
    writer = getattr(loop, name)

    def counted(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        return writer(*args, **kwargs)
    setattr(loop, name, counted)


def untrained_evaluation(model_dir, tokenizer, train_set, eval_set) -> dict:
    setup = prepare(AutoModelForSequenceClassification.from_pretrained(model_dir), tokenizer,
                    train_set, eval_set, TrainConfig(**CONFIG), RecordingCollator(tokenizer))
    return evaluate_model(setup.model, setup.eval_loader, setup.accelerator,
                          lambda predictions, labels: classification_metrics(labels, predictions))


def trained(model_dir, tokenizer, data, output_dir: Path, hooks=(), resume=False):
    set_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    collator = RecordingCollator(tokenizer)
    result = train(model, tokenizer, *data, TrainConfig(**CONFIG, output_dir=str(output_dir),
                                                        resume=resume),
                   collator=collator, step_hooks=hooks)
    return model, result, collator.batches


def main(model_dir: str, out: str, resume_check: bool) -> None:
    out = Path(out)
    tokenizer = load_tokenizer(model_dir)
    data = toy_dataset(tokenizer, TRAIN_EXAMPLES, 0), toy_dataset(tokenizer, EVAL_EXAMPLES, 1,
                                                                      first=EVAL_FIRST)
    record = {"untrained": untrained_evaluation(model_dir, tokenizer, *data), "writers": {}}
    for name in ("save_model", "finish_run"):
        count_calls(record["writers"], name)
    model, result, record["batches"] = trained(model_dir, tokenizer, data, out / "run")
    record.update(train_log=result.train_log, eval_log=result.eval_log,
                  total_steps=result.total_steps, examples_seen=result.examples_seen)
    if resume_check:
        try:
            trained(model_dir, tokenizer, data, out / "resumed", hooks=[interrupt_at_step_5])
        except Interrupt:
            pass
        resumed, again, _ = trained(model_dir, tokenizer, data, out / "resumed", resume=True)
        record.update(resumed_log=again.train_log, resumed_examples_seen=again.examples_seen,
                      resumed_weight_gap=max((value - resumed.state_dict()[key]).abs().max().item()
                                             for key, value in model.state_dict().items()))
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    if rank == 0:
        torch.save(model.state_dict(), out / "final.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--resume-check" in sys.argv)
