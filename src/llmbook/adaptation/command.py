"""``llmbook finetune`` (chapter 9 and the Adaptation part): fine-tune a sentiment classifier,
with a parameter-efficient method (chapter 10) or self-training on unlabelled reviews.

* ``llmbook finetune --task rotten_tomatoes --out runs/rt`` -- one run (cached in ``runs/``);
* ``llmbook finetune --self-train 2 --unlabelled imdb`` -- that run as the first teacher, then
  two rounds of students trained on gold plus pseudo-labelled IMDb sentences
  (:mod:`llmbook.adaptation.self_training`); ``--consistency W`` adds the R-Drop term.
"""

from __future__ import annotations

import argparse

from llmbook.adaptation.finetune import FinetuneSpec, finetune
from llmbook.adaptation.self_training import self_training_rounds
from llmbook.core.profiles import PROFILES, get_profile
from llmbook.core.runs import add_run_options
from llmbook.core.utils import is_main_process, options_given
from llmbook.data.corpora import TASKS
from llmbook.models.adapters import METHODS


def _spec(args):
    overrides = options_given(epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
                              checkpoint_min_seconds=args.checkpoint_seconds,
                              consistency_weight=args.consistency)
    profile = get_profile(args.profile)
    return profile, FinetuneSpec.from_profile(args.task, profile, args.model, method=args.method,
                                              rank=args.rank, **overrides)


def _report(run, label: str = "") -> None:
    test = run.test_metrics
    print(f"{label}model: {run.model_dir}{run.origin()}")
    print(f"{' ' * len(label)}test accuracy {test['accuracy']:.4f}  macro-F1 "
          f"{test['macro_f1']:.4f}  (n={test['n']}, trained {run.metrics['train_seconds']:.0f} s "
          f"on {run.metrics['train_examples']} examples)")


def run_finetune(args) -> int:
    profile, spec = _spec(args)
    if not args.self_train:
        run = finetune(spec, out=args.out, force=args.force, resume=args.resume)
        if is_main_process():  # one of several training processes: the first one reports
            _report(run)
        return 0
    if args.out or args.resume:
        raise ValueError("--self-train keeps every round in the runs/ cache (it prints their "
                         "directories): drop --out and --resume")
    runs = self_training_rounds(spec, args.self_train, args.unlabelled_size
                                or profile.unlabelled_size, args.pseudo_threshold, args.force)
    if is_main_process():
        for number, run in enumerate(runs):
            _report(run, f"round {number}: ")
    return 0


def add_finetune_parser(commands) -> argparse.ArgumentParser:
    p = commands.add_parser("finetune", help="fine-tune a sentiment classifier")
    p.add_argument("--task", choices=TASKS, default="rotten_tomatoes")
    p.add_argument("--profile", choices=list(PROFILES), default=None,
                   help="run profile (default: $LLMBOOK_PROFILE, else cpu or gpu)")
    p.add_argument("--model", default=None, help="'minilm', a hub id or a model directory")
    p.add_argument("--out", default=None, help="output directory (default: the runs/ cache)")
    p.add_argument("--method", choices=METHODS, default="full",
                   help="full fine-tuning or a parameter-efficient method (chapter 10)")
    p.add_argument("--rank", type=int, default=8, help="LoRA/AdaLoRA rank")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, help="default: the profile's (full) or the method's")
    p.add_argument("--seed", type=int)
    p.add_argument("--consistency", type=float, metavar="W",
                   help="R-Drop: weight of the KL between two dropout passes (default 0: off)")
    add_run_options(p)
    p.add_argument("--checkpoint-seconds", type=float, metavar="S", help="write the resumable "
                   "state at an evaluation once S seconds of training passed (default 60)")
    group = p.add_argument_group("self-training on unlabelled reviews")
    group.add_argument("--self-train", type=int, default=0, metavar="ROUNDS",
                       help="after the run, ROUNDS students each taught by the previous model")
    group.add_argument("--unlabelled", choices=["imdb"], default="imdb",
                       help="the unlabelled pool: sentences of IMDb train reviews")
    group.add_argument("--unlabelled-size", type=int, metavar="N",
                       help="pool sentences the teacher labels (default: the profile's)")
    group.add_argument("--pseudo-threshold", type=float, default=0.9, metavar="P",
                       help="keep pseudo-labels of probability >= P, as many per class")
    return p
