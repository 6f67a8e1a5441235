"""Benchmarks (chapters 9 and 15): ``llmbook bench finetune | serve | generate``.

``serve`` is the load test of the sentiment API (:mod:`llmbook.deployment.loadtest`):
micro-batching off
vs on at several concurrency levels, then an overload phase at 10x the measured capacity.
``generate`` streams SmolLM2's answers to the support desk's questions from ``/v1/generate``
at 1, 4 and 16 concurrent streams: time to first token and aggregate tokens/s.

``finetune`` measures, in one process, on the same data, model initialisation and
hyper-parameters, the training throughput of

* the book's loop (:func:`llmbook.training.loop.train`) with dynamic padding and length grouping,
* the same loop padding every batch to ``max_length`` (what the source article's code does),
* ``transformers.Trainer`` with its defaults (dynamic padding, random batches), and
* ``transformers.Trainer`` with ``train_sampling_strategy="group_by_length"``,

and reports examples per second and ratios against the baselines.  This is a benchmark, not a
test: the numbers are what this machine measured in this run.
"""

from __future__ import annotations

import json
import tempfile
import time

import pandas as pd
from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

from llmbook.adaptation.finetune import FinetuneSpec, finetune
from llmbook.core.profiles import Profile, get_profile
from llmbook.core.runs import cached_json
from llmbook.data.corpora import load_sentiment, subsample
from llmbook.data.tokenization import tokenize_dataset
from llmbook.deployment.export import cached_export
from llmbook.deployment.loadtest import (
    UNLIMITED_RATE,
    batching_gain,
    serve_benchmark,
)
from llmbook.deployment.stream_load import stream_benchmark
from llmbook.generation.command import SMOLLM2
from llmbook.generation.instruction_sets import SUPPORT_FACTS, TRAINED_QUESTIONS
from llmbook.models.loading import load_classifier, load_tokenizer
from llmbook.training.batching import make_collator
from llmbook.training.config import TrainConfig
from llmbook.training.loop import train

#: Training examples per measured run, by profile (one epoch each).
BENCH_EXAMPLES = {"smoke": 64, "cpu": 1024, "gpu": 8192}


def _time_our_loop(model, tokenizer, train_set, eval_set, profile, padding: str) -> float:
    config = TrainConfig(epochs=1, batch_size=profile.batch_size, learning_rate=5e-5,
                         eval_batch_size=profile.eval_batch_size, progress=False,
                         group_by_length=padding == "longest", log_every=1_000)
    collator = make_collator(tokenizer, padding=padding, max_length=profile.max_length)
    start = time.perf_counter()
    train(model, tokenizer, train_set, eval_set, config, collator=collator)
    return time.perf_counter() - start


def _time_trainer(model, tokenizer, train_set, profile, sampling: str) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch, per_device_train_batch_size=profile.batch_size,
            num_train_epochs=1, learning_rate=5e-5, weight_decay=0.01, warmup_steps=0.1,
            eval_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True,
            logging_strategy="no", train_sampling_strategy=sampling, seed=0,
            dataloader_pin_memory=False,
        )
        trainer = Trainer(model=model, args=args, train_dataset=train_set,
                          data_collator=make_collator(tokenizer))
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics to stdout
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def benchmark_finetune(profile: Profile, examples: int | None = None) -> pd.DataFrame:
    """One row per setup: seconds for one epoch over ``examples`` Rotten Tomatoes reviews."""
    examples = examples or BENCH_EXAMPLES[profile.name]
    splits = load_sentiment("rotten_tomatoes")
    tokenizer = load_tokenizer(profile.model_name)
    train_set = tokenize_dataset(subsample(splits["train"], examples), tokenizer,
                                 profile.max_length)
    # our loop evaluates once per epoch; keep that cost negligible and identical across setups
    eval_set = tokenize_dataset(subsample(splits["validation"], 32), tokenizer,
                                profile.max_length)
    setups = {
        "llmbook loop, dynamic padding + length grouping":
            lambda m: _time_our_loop(m, tokenizer, train_set, eval_set, profile, "longest"),
        "llmbook loop, fixed max_length padding":
            lambda m: _time_our_loop(m, tokenizer, train_set, eval_set, profile, "max_length"),
        "transformers.Trainer, defaults (dynamic padding)":
            lambda m: _time_trainer(m, tokenizer, train_set, profile, "random"),
        "transformers.Trainer, group_by_length":
            lambda m: _time_trainer(m, tokenizer, train_set, profile, "group_by_length"),
    }
    set_seed(0)  # warm-up run (first-call allocations, thread pools), not measured
    _time_our_loop(load_classifier(num_labels=2, name=profile.model_name), tokenizer, eval_set,
                   eval_set, profile, "longest")
    rows = []
    for name, run in setups.items():
        set_seed(0)
        model = load_classifier(num_labels=2, name=profile.model_name)
        seconds = run(model)
        rows.append({"setup": name, "examples": len(train_set), "seconds": seconds,
                     "examples_per_second": len(train_set) / seconds})
    table = pd.DataFrame(rows)
    ours = table["examples_per_second"].iloc[0]
    table["speed vs Trainer defaults"] = ours / table["examples_per_second"].iloc[2]
    table["relative speed"] = table["examples_per_second"] / ours
    return table


def cached_benchmark_finetune(profile: Profile) -> pd.DataFrame:
    """:func:`benchmark_finetune`, stored in ``runs/`` so the chapter and CLI share one run."""
    key = {"profile": profile.name, "examples": BENCH_EXAMPLES[profile.name]}
    return pd.DataFrame(cached_json("bench-finetune", key,
                                    lambda: benchmark_finetune(profile).to_dict(orient="list")))


#: Seconds per concurrency level of the serving load test, by profile.
SERVE_SECONDS = {"smoke": 2.0, "cpu": 10.0, "gpu": 10.0}


def cached_benchmark_serve(profile: Profile, refresh: bool = False) -> dict:
    """:func:`llmbook.deployment.loadtest.serve_benchmark` of chapter 14's int8 ONNX export,
    stored in ``runs/``.

    The served model is the chapter-9 classifier exported by
    ``llmbook.deployment.export.cached_export(..., quantize="int8")``; the request texts are the
    Rotten
    Tomatoes validation reviews.
    """
    model_dir = cached_export(finetune(FinetuneSpec.from_profile("rotten_tomatoes", profile))
                              .model_dir, quantize="int8")
    seconds = SERVE_SECONDS[profile.name]
    texts = list(load_sentiment("rotten_tomatoes")["validation"]["text"])
    key = {"profile": profile.name, "model": model_dir.name, "seconds": seconds,
           "rate_limit": UNLIMITED_RATE}
    return cached_json("bench-serve", key, lambda: serve_benchmark(
        model_dir, texts, seconds=seconds, overload_seconds=seconds), refresh=refresh)


#: The streaming load test, by profile: seconds per level, concurrent streams, tokens per answer.
GENERATE_LOAD = {"smoke": (2.0, (1, 2), 8), "cpu": (20.0, (1, 4, 16), 32),
                 "gpu": (20.0, (1, 4, 16), 64)}


def cached_benchmark_generate(profile: Profile, refresh: bool = False) -> dict:
    """:func:`llmbook.deployment.stream_load.stream_benchmark` of packaged SmolLM2 answering the
    held-out questions of chapter 8's support desk, stored in ``runs/``."""
    seconds, concurrency, new_tokens = GENERATE_LOAD[profile.name]
    prompts = [q for fact in SUPPORT_FACTS for q in fact.questions[TRAINED_QUESTIONS:]]
    key = {"profile": profile.name, "model": SMOLLM2, "seconds": seconds,
           "concurrency": list(concurrency), "new_tokens": new_tokens}
    return cached_json("bench-generate", key, lambda: stream_benchmark(
        SMOLLM2, prompts, concurrency, seconds, new_tokens), refresh=refresh)


def _report_serve(results: dict) -> None:
    levels = pd.DataFrame(results["levels"])
    print(levels.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    gain, p99_off, p99_on = batching_gain(results)
    print(json.dumps({"batching_requests_per_s_ratio": gain, "p99_ms_off": p99_off,
                      "p99_ms_on": p99_on, "overload": results["overload"]}, indent=2))


def run_benchmark(name: str, profile_name: str | None = None, examples: int | None = None) -> int:
    """``llmbook bench finetune | serve | generate``: measure and print (always re-measured)."""
    if name == "serve":
        _report_serve(cached_benchmark_serve(get_profile(profile_name), refresh=True))
        return 0
    if name == "generate":
        results = cached_benchmark_generate(get_profile(profile_name), refresh=True)
        print(pd.DataFrame(results["levels"]).to_string(index=False,
                                                        float_format=lambda x: f"{x:.1f}"))
        return 0
    table = benchmark_finetune(get_profile(profile_name), examples)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    ours, fixed, trainer = table["examples_per_second"].iloc[:3]
    print(json.dumps({"ours_vs_trainer": ours / trainer, "dynamic_vs_fixed_padding": ours / fixed}))
    return 0
