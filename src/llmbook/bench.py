"""``python -m llmbook.bench finetune | serve``: the benchmarks' first entry point, kept working.

The same commands are ``llmbook bench finetune | serve``; the code is in
:mod:`llmbook.deployment.benchmark`.
"""

from llmbook.deployment.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
