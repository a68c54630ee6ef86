# rrhf: `make demo` runs the pipeline, `make test` runs lint and the tests; both install into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed before the project so pip never pulls a CUDA build on a machine
# without a GPU. On a GPU machine: `make install TORCH=torch` (or install torch yourself first).
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# Iterative RRHF on a tiny model built offline, measured on held-out prompts (a few minutes on 2 CPU cores):
# prints mean reward before/after, win rate and rank accuracy; writes PNG plots to $(OUT)/demo.
demo: $(STAMP)
	$(BIN)/python examples/demo.py --out $(OUT)/demo

bench: $(STAMP)
	$(BIN)/python bench/bench_io.py
	$(BIN)/python bench/bench_score.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_sample.py

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
