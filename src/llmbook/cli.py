"""Command line: ``llmbook finetune | pretrain | distil | sft | predict | evaluate | export |
serve | generate | bench`` (each subcommand's ``--help`` lists its options).

* ``finetune --task rotten_tomatoes --out runs/rt``; ``distil --teacher runs/rt`` (chapter 14)
* ``pretrain --from-scratch|--from MODEL --out runs/mlm`` (``finetune --model runs/mlm`` takes
  it); ``--objective clm --from-scratch`` trains a small GPT-2 that ``generate`` reads
* ``sft --method lora|full [--export DIR]`` (chapter 8): SmolLM2 on the three instruction sets
* ``predict --model runs/rt "text" ...`` or ``--input file.jsonl|.csv --output preds.jsonl``;
  ``evaluate --model runs/rt --input file.jsonl [--report r.json]``: a model directory or an
  export (:mod:`llmbook.deployment.scoring`)
* ``export --model runs/rt --quantize int8 --out runs/rt-onnx``; ``serve --model runs/rt-onnx
  [--generate smollm2]`` (chapter 15); ``generate --model smollm2|DIR "prompt"``

Rows carry ``text`` (and ``label``, a class id or a label name of the model, for evaluate);
predict adds ``predicted_label`` and ``predicted_score``.  A bad row (:mod:`llmbook.data.rows`)
is reported with its line number and skipped, the others are scored, and the exit status is 1;
texts longer than the model's maximum length are counted and reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from llmbook.adaptation.command import add_finetune_parser, run_finetune
from llmbook.core.profiles import PROFILES
from llmbook.core.runs import RunProvenanceWarning, add_run_options
from llmbook.core.utils import is_main_process, options_given
from llmbook.data.corpora import TASKS
from llmbook.data.rows import good_rows, good_texts
from llmbook.deployment.serving.command import add_serve_parser
from llmbook.generation.command import add_generate_parser


def _sft(args) -> int:
    from llmbook.core.profiles import get_profile
    from llmbook.deployment.manifest import write_manifest
    from llmbook.generation.sft import export_tuned, instruction_tune, mixture_sizes, sft_spec_for

    spec = sft_spec_for(get_profile(args.profile), method=args.method,
                        **options_given(epochs=args.epochs, learning_rate=args.lr, seed=args.seed))
    print(f"instruction tuning SmolLM2-135M-Instruct ({spec.method}) on {mixture_sizes(spec)}")
    run = instruction_tune(spec, out=args.out, force=args.force)
    print(f"model: {run.model_dir}{' (cached)' if run.cached else ''}")
    print(f"held-out loss {run.metrics['best_validation']['loss']:.3f} "
          f"(trained {run.metrics['train_seconds']:.0f} s, "
          f"{run.metrics['tokens_per_second']:.0f} tokens/s)")
    if args.export:
        out = export_tuned(run.model_dir, args.export)
        write_manifest(out)
        print(f"exported to {out} with a sha256 manifest; try it: llmbook generate --model "
              f"{out} \"How do I cancel?\"  or serve it: llmbook serve --generate {out}")
    return 0


def _distil(args) -> int:
    from dataclasses import replace

    from llmbook.core.profiles import get_profile
    from llmbook.deployment.distillation import DistilSpec, distil

    overrides = options_given(epochs=args.epochs, learning_rate=args.lr, seed=args.seed)
    spec = DistilSpec.from_profile(args.teacher, args.task, get_profile(args.profile),
                                   **overrides)
    if args.layers:
        try:
            spec = replace(spec, keep_layers=tuple(int(i) for i in args.layers.split(",")))
        except ValueError:
            raise ValueError(f"--layers takes comma-separated layer indices, e.g. 0,1,3,5; got "
                             f"{args.layers!r}") from None
    if args.transfer is not None:
        spec = replace(spec, transfer_size=args.transfer)
    run = distil(spec, out=args.out, force=args.force)
    validation = run.metrics["best_validation"]
    print(f"model: {run.model_dir}{' (cached)' if run.cached else ''}")
    print(f"{run.metrics['layers']}-layer student: validation accuracy "
          f"{validation['accuracy']:.4f} (trained {run.metrics['train_seconds']:.0f} s on "
          f"{run.metrics['transfer_examples']} texts)")
    return 0


def _pretrain(args) -> int:
    from llmbook.core.profiles import get_profile

    overrides = options_given(steps=args.steps, learning_rate=args.lr, seed=args.seed)
    if args.objective == "clm":
        return _pretrain_clm(get_profile(args.profile), args, overrides)
    from llmbook.pretraining.runs import SCRATCH, pretrain, spec_for

    source = SCRATCH if args.from_scratch else args.source
    run = pretrain(spec_for(get_profile(args.profile), source, whole_word=args.whole_word,
                            **overrides), out=args.out, force=args.force, resume=args.resume)
    before, after = run.metrics["before"], run.metrics["after"]
    if not is_main_process():
        return 0
    print(f"model: {run.model_dir}{run.origin()}")
    print(f"held-out perplexity {before['perplexity']:.1f} -> {after['perplexity']:.1f}, "
          f"masked-token accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}")
    return 0


def _pretrain_clm(profile, args, overrides: dict) -> int:
    """``pretrain --objective clm``: a small GPT-2 from scratch on next tokens."""
    from llmbook.generation.pretraining import clm_spec_for, pretrain_clm

    if args.source or args.whole_word:
        raise ValueError("--objective clm trains a GPT-2 from scratch: use --from-scratch, "
                         "without --from or --whole-word")
    run = pretrain_clm(clm_spec_for(profile, **overrides), out=args.out, force=args.force,
                       resume=args.resume)
    before, after = run.metrics["before"], run.metrics["after"]
    if not is_main_process():
        return 0
    print(f"model: {run.model_dir}{run.origin()}")
    print(f"held-out perplexity {before['perplexity']:.1f} -> {after['perplexity']:.1f} "
          f"({run.metrics['steps_per_second']:.1f} steps/s); try it: "
          f"llmbook generate --model {run.model_dir} \"This movie was\"")
    return 0


def _predict(args) -> int:
    from llmbook.deployment.scoring import load_scorer, predicted_rows

    if bool(args.texts) == bool(args.input):
        raise SystemExit("error: give texts to score or --input FILE, not both or neither")
    scorer = load_scorer(args.model)
    rows, bad = good_texts(args.texts) if args.texts else good_rows(Path(args.input))
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for row in predicted_rows(scorer, rows):
            out.write(json.dumps(row) + "\n")
    finally:
        if args.output:
            out.close()
    _report_truncated(scorer.count_truncated([row["text"] for row in rows]), scorer.max_length)
    if bad:
        print(f"{bad} bad row(s) skipped; {len(rows)} scored", file=sys.stderr)
    return 1 if bad else 0


def _report_truncated(truncated: int, max_length: int | None) -> None:
    if truncated:
        print(f"{truncated} text(s) longer than the model's {max_length} tokens: only their "
              "beginning was scored", file=sys.stderr)


def _evaluate(args) -> int:
    from llmbook.deployment.scoring import evaluate_rows, load_scorer

    path = Path(args.input)
    scorer = load_scorer(args.model)
    rows, bad = good_rows(path, label2id=scorer.label2id)
    if not rows:
        raise SystemExit(f"error: {path}: no usable rows")
    metrics = evaluate_rows(scorer, rows)
    print(f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
          f"(n={metrics['n']}, skipped {bad}, truncated {metrics['truncated']}; "
          f"backend {metrics['backend']})")
    _report_truncated(metrics["truncated"], metrics["max_length"])
    if args.report:
        report = {"model": str(args.model), "input": str(path), "skipped_rows": bad, **metrics}
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {args.report}")
    return 1 if bad else 0


def _export(args) -> int:
    from llmbook.deployment.export import export_model

    key = None
    if args.sign_key:  # read as serve reads $LLMBOOK_MANIFEST_KEY_FILE
        path = Path(args.sign_key)
        key = path.read_bytes().strip() if path.is_file() else None
        if not key:
            raise ValueError(f"--sign-key {path}: {'empty' if path.is_file() else 'no such file'}")
    out = export_model(args.model, args.out, quantize=None if args.quantize == "none"
                       else args.quantize, key=key)
    print(f"exported {args.model} -> {out} (format onnx, quantize {args.quantize}); "
          f"sha256 manifest{' (signed)' if key else ''}: {out / 'manifest.json'}")
    return 0


def _bench(args) -> int:
    from llmbook.deployment.benchmark import run_benchmark

    return run_benchmark(args.benchmark, args.profile, args.examples)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmbook", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_training_commands(commands)
    _add_model_commands(commands)
    _add_sft_command(commands)
    add_generate_parser(commands)
    return parser


def _add_sft_command(commands) -> None:
    """``sft``: chapter 8's instruction tuning of SmolLM2 (and its export for serving)."""
    p = commands.add_parser("sft", help="instruction-tune SmolLM2-135M-Instruct on the book's "
                                        "three instruction sets (chapter 8)")
    p.add_argument("--method", choices=["lora", "full"], default="lora")
    p.add_argument("--profile", choices=list(PROFILES), default=None)
    p.add_argument("--out", default=None, help="output directory (default: the runs/ cache)")
    p.add_argument("--export", metavar="DIR", default=None,
                   help="also write the tuned model (LoRA merged) with a sha256 manifest to DIR, "
                        "for `llmbook serve --generate DIR`")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    p.set_defaults(func=_sft)


def _add_training_commands(commands) -> None:
    """``finetune``, ``distil``, ``pretrain``: runs that train (and cache) a model."""
    add_finetune_parser(commands).set_defaults(func=run_finetune)

    p = commands.add_parser("distil", help="distil a fine-tuned model into fewer layers")
    p.add_argument("--teacher", required=True, help="model directory from `llmbook finetune`")
    p.add_argument("--task", choices=TASKS, default="rotten_tomatoes")
    p.add_argument("--profile", choices=list(PROFILES), default=None)
    p.add_argument("--layers", help="encoder layers the student keeps, e.g. 0,1,3,5 "
                   "(default: the profile's)")
    p.add_argument("--transfer", type=int, help="unlabeled IMDb sentences added to the "
                   "transfer set (default: the profile's)")
    p.add_argument("--out", default=None, help="output directory (default: the runs/ cache)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    p.set_defaults(func=_distil)

    p = commands.add_parser("pretrain", help="masked-LM (default) or causal-LM pre-training "
                                             "on the IMDb corpus")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-scratch", action="store_true",
                       help="a small BERT with random weights and a new WordPiece vocabulary")
    start.add_argument("--from", dest="source", metavar="MODEL",
                       help="continue pre-training MODEL ('minilm', a hub id or a directory)")
    p.add_argument("--corpus", choices=["imdb"], default="imdb")
    p.add_argument("--profile", choices=list(PROFILES), default=None)
    p.add_argument("--out", default=None, help="output directory (default: the runs/ cache)")
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--whole-word", action="store_true", help="mask whole words")
    p.add_argument("--objective", choices=["mlm", "clm"], default="mlm",
                   help="mlm: BERT's masked tokens (chapter 4); clm: GPT's next token, "
                        "from scratch only (Generative models)")
    add_run_options(p)
    p.set_defaults(func=_pretrain)


def _add_model_commands(commands) -> None:
    """``predict``, ``evaluate``, ``export``, ``serve``, ``bench``: using a trained model."""
    model_help = ("model directory from `llmbook finetune` (or distil), or an export directory "
                  "from `llmbook export` (ONNX, int8 or not)")
    p = commands.add_parser("predict", help="score texts with a fine-tuned or exported model")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("texts", nargs="*", help="texts to score")
    p.add_argument("--input", help=".jsonl or .csv file with a 'text' field per row")
    p.add_argument("--output", help="write JSON lines here instead of stdout")
    p.set_defaults(func=_predict)

    p = commands.add_parser("evaluate", help="accuracy and F1 on a labeled file")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--input", required=True, help=".jsonl or .csv with 'text' and 'label'")
    p.add_argument("--report", metavar="PATH", help="also write the metrics as JSON to PATH")
    p.set_defaults(func=_evaluate)

    p = commands.add_parser("export", help="export a model to ONNX (optionally int8)")
    p.add_argument("--model", required=True, help="model directory from `llmbook finetune`")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--quantize", choices=["none", "int8"], default="none")
    p.add_argument("--out", required=True, help="output directory (gets a sha256 manifest)")
    p.add_argument("--sign-key", metavar="FILE", help="sign the manifest (HMAC-SHA256) with "
                   "the key in FILE; `serve` then needs the same key ($LLMBOOK_MANIFEST_KEY_FILE)")
    p.set_defaults(func=_export)

    add_serve_parser(commands)

    p = commands.add_parser("bench", help="benchmarks: training throughput (finetune), the API "
                                          "under load (serve), streamed generation under load "
                                          "(generate)")
    p.add_argument("benchmark", choices=["finetune", "serve", "generate"])
    p.add_argument("--profile", choices=list(PROFILES), default=None)
    p.add_argument("--examples", type=int, default=None,
                   help="training examples per measured run (finetune; default: the profile's)")
    p.set_defaults(func=_bench)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=RunProvenanceWarning)  # Run.origin says it
    try:
        return args.func(args)
    except (OSError, ValueError) as err:  # FileNotFoundError, PermissionError among them
        print(f"error: {err}", file=sys.stderr)
        return 2
