# make train   trains the example network (creates .venv on first use; installs the package and matplotlib)
# make test    ruff format --check, ruff check, then the whole pytest suite (adds the test tools)
# make bench   times minires against PyTorch (benchmarks/bench.py; a few minutes)
# make train ARGS="--epochs 1 --limit-train 512 --limit-test 256"   passes flags to the training script
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
TRAIN_STAMP := $(VENV)/.installed-train
TEST_STAMP := $(VENV)/.installed-test
GPU_STAMP := $(VENV)/.installed-gpu

.PHONY: venv venv-train test test-gpu train bench format clean

venv: $(TEST_STAMP)
venv-train: $(TRAIN_STAMP)

# The venv itself, once.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# Each stamp reinstalls only when the package metadata changes. Training needs the package and
# matplotlib (the plot extra) only; the test tools (torch, a multi-GB download outside a CPU-wheel index)
# come with make test. torch is pinned (==) in setup.cfg, so pip never pulls another torch release.
$(TRAIN_STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[plot]'
	touch $@

$(TEST_STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test,plot]'
	touch $@

# The gpu extra (CuPy) on top of the test tools; only useful on a machine with an NVIDIA GPU.
$(GPU_STAMP): $(TEST_STAMP)
	$(BIN)/python -m pip install -e '.[test,plot,gpu]'
	touch $@

test: $(TEST_STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-gpu: $(GPU_STAMP)
	MINIRES_REQUIRE_GPU=1 $(BIN)/python -m pytest -q -m gpu

train: $(TRAIN_STAMP)
	$(BIN)/python examples/train_fashion_mnist.py $(ARGS)

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench.py

format: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
