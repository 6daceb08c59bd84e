# jaxreg: every target works from a fresh clone and is quick when already done.
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.jaxreg-installed
# torch's CPU build: a bare `torch` requirement pulls several GB of CUDA wheels.
TORCH   ?= torch==2.13.0
FMNIST  := /usr/share/datasets/fashion-mnist
# 2-core CI machine: two pytest workers.
PYTEST_WORKERS ?= 2

.PHONY: setup data test test-slow parity run bench lint clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[torch,dev]"
	touch $(STAMP)

# The real Fashion-MNIST comes from Debian's package; nothing is downloaded at run time.
data:
	@if [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else echo "note: no apt-get; put the Fashion-MNIST IDX files in a folder and pass --data-dir"; fi

# Two workers share the two cores: one intra-op thread each for torch and for XLA's Eigen pool
# (oversubscribed, small ops run several times slower).
TEST_ENV ?= OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

test: setup
	$(TEST_ENV) $(PY) -m pytest -q -n $(PYTEST_WORKERS) --doctest-modules jaxreg tests parity_tests

# The long end-to-end runs and the float32 / VGG16 parity cases that `make test` leaves out.
test-slow: setup
	$(TEST_ENV) $(PY) -m pytest -q -n $(PYTEST_WORKERS) -m slow tests parity_tests

# Every parity case (-m "" lifts the default `not slow`); writes parity_tests/results/.
parity: setup
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "" parity_tests

run: setup
	$(VENV)/bin/jaxreg main

bench: setup
	KERAS_BACKEND=jax $(PY) -c "import keras, equinox" 2>/dev/null || $(PY) -m pip install -q -e ".[torch,dev,bench]"
	$(VENV)/bin/jaxreg bench

lint: setup
	$(VENV)/bin/ruff check conftest.py jaxreg tests parity_tests experiments benchmarks
	$(VENV)/bin/ruff format --check conftest.py jaxreg tests parity_tests experiments benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
