# make train   trains the example network (creates .venv on first use)
# make test    ruff format --check, ruff check, then the whole pytest suite
# make bench   times minires against PyTorch (benchmarks/bench.py; a few minutes)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu

.PHONY: venv test test-gpu train bench format clean

venv: $(STAMP)

# Reinstall only when the package metadata changes. torch is pinned (==) in setup.cfg, so pip never
# pulls another torch release.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test,plot]'
	touch $@

# The gpu extra (CuPy) on top of the test tools; only useful on a machine with an NVIDIA GPU.
$(GPU_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[test,plot,gpu]'
	touch $@

test: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-gpu: $(GPU_STAMP)
	MINIRES_REQUIRE_GPU=1 $(BIN)/python -m pytest -q -m gpu

train: venv
	$(BIN)/python examples/train_fashion_mnist.py

bench: venv
	$(BIN)/python benchmarks/bench.py

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
