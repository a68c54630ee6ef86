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

# The whole pipeline on tiny models built offline in seconds (random weights, so the text is noise):
# sample, score with a reward model and a rule, rank, train, then read the trained policy as a reward model.
# Showing that reward rises is the job of the fuller demo; this one shows every stage working end to end.
DEMO := $(OUT)/demo
RRHF := $(BIN)/rrhf

demo: $(STAMP)
	$(BIN)/python -m stages.tiny_models $(DEMO)/models
	$(RRHF) sample examples/prompts.jsonl -o $(DEMO)/samples.jsonl --model $(DEMO)/models/tiny-policy \
		-k 4 --max-new-tokens 24 --seed 0 --force
	$(RRHF) sample examples/hh.jsonl -o $(DEMO)/samples.jsonl --model $(DEMO)/models/tiny-policy \
		-k 2 --max-new-tokens 24 --seed 0 --append
	$(RRHF) score $(DEMO)/samples.jsonl -o $(DEMO)/scored-rm.jsonl --backend reward-model \
		--model $(DEMO)/models/tiny-reward --as rm --force
	$(RRHF) score $(DEMO)/scored-rm.jsonl -o $(DEMO)/scored.jsonl --backend python \
		--fn examples/rewards.py:concise --as concise --primary rm --force
	$(RRHF) rank $(DEMO)/scored.jsonl -o $(DEMO)/ranked.jsonl
	$(RRHF) rank $(DEMO)/scored.jsonl -o $(DEMO)/pairs.jsonl --format pairs --pairs best-vs-rest
	$(RRHF) train $(DEMO)/ranked.jsonl -o $(DEMO)/policy --model $(DEMO)/models/tiny-policy \
		--max-steps 20 --lr 1e-3 --queries-per-batch 2 --logging-steps 5 --force
	$(RRHF) score $(DEMO)/scored.jsonl -o $(DEMO)/scored-by-policy.jsonl --backend logprob \
		--model $(DEMO)/policy --as policy --primary rm --force
	$(RRHF) inspect $(DEMO)/scored-by-policy.jsonl
	$(RRHF) inspect $(DEMO)/policy

bench: $(STAMP)
	$(BIN)/python bench/bench_io.py
	$(BIN)/python bench/bench_score.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_sample.py

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
