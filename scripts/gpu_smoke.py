"""The gpu-smoke check (issue 20): the gpu code paths exercised in a few minutes on one GPU,
before the hours-long gpu-nbval run.  Run from the repository root on a CUDA machine:
    .venv/bin/python scripts/gpu_smoke.py [OUT_JSON]   (default runs/gpu-smoke.json)

* the gpu profile's model, offline by default (``LLMBOOK_OFFLINE=1`` gives the packaged MiniLM
  at full data scale: the profile's ``describe()`` says which);
* one epoch of fine-tuning on Rotten Tomatoes with the book's loop (accelerate on CUDA, bf16 or
  fp16 autocast) beside ``transformers.Trainer`` (:func:`benchmark_finetune`): examples/s;
* greedy decoding with the packaged SmolLM2 on the GPU, with and without the KV cache: tokens/s.

Without a CUDA device it prints one line and exits 2 (nothing to check).
"""

import json
import platform
import sys
import time
from pathlib import Path

import torch

EXAMPLES = 2048  # one epoch of fine-tuning per setup: seconds on a modern GPU
NEW_TOKENS = 64


def finetune_figures(profile) -> list[dict]:
    from llmbook.deployment.benchmark import benchmark_finetune

    table = benchmark_finetune(profile, examples=EXAMPLES)
    return table[["setup", "examples", "seconds", "examples_per_second"]].to_dict("records")


def decoding_figures() -> dict:
    from llmbook.generation.kv_cache import time_per_token
    from llmbook.models.loading import load_generator

    tokenizer, model = load_generator()
    model = model.to("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported()
                     else torch.float16)
    prompt = "A customer asks how to reset a password. The support answer is:"
    ids = tokenizer(prompt, return_tensors="pt").input_ids.to("cuda")
    time_per_token(model, ids, 4)  # warm-up: kernels, allocator
    figures = {"dtype": str(model.dtype), "new_tokens": NEW_TOKENS}
    for cache in (True, False):
        torch.cuda.synchronize()
        seconds = time_per_token(model, ids, NEW_TOKENS, use_cache=cache, repeats=3)
        figures[f"tokens_per_second_{'with' if cache else 'without'}_cache"] = 1 / seconds
    return figures


def main(out: Path) -> int:
    if not torch.cuda.is_available():
        print("gpu-smoke: no CUDA device here (torch.cuda.is_available() is False); "
              "nothing was run", file=sys.stderr)
        return 2
    from llmbook.core.profiles import get_profile

    profile = get_profile("gpu")
    print(profile.describe())
    start = time.perf_counter()
    record = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "python": platform.python_version(), "model": profile.model_name,
              "finetune": finetune_figures(profile), "decoding": decoding_figures()}
    record["seconds"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    for row in record["finetune"]:
        print(f"{row['setup']:55} {row['examples_per_second']:9.1f} examples/s")
    for name, value in record["decoding"].items():
        print(f"SmolLM2 {name:45} {value}")
    print(f"gpu-smoke passed in {record['seconds']:.0f} s on {record['device']}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/gpu-smoke.json")))
