"""``python -m llmbook.bench finetune | serve``: the benchmarks' first entry point, kept working.

It is ``llmbook bench finetune | serve`` (:mod:`llmbook.cli`); the code is in
:mod:`llmbook.deployment.benchmark`.
"""

import sys

from llmbook.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
