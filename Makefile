# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; on a CUDA machine use e.g. `make run TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
SCENARIO ?=
OUT ?= out

.PHONY: run test install install-test datasets lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .
	touch $@

# one pip run for the package and its test extras (make test on a fresh clone)
$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

# Fashion-MNIST (`train.dataset: fashion_mnist`) from Debian's package, when missing and
# this is root on a machine with apt-get; otherwise one line, and its tests skip
FASHION_MNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
datasets:
	@if [ -f $(FASHION_MNIST) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
		  || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null; }; } \
		|| echo "fashion_mnist: apt-get install dataset-fashion-mnist failed; its tests will skip"; \
	else echo "fashion_mnist: not installed (as root: apt-get install dataset-fashion-mnist); its tests will skip"; fi

install-test: $(VENV)/.installed-test

run: install datasets
	$(BIN)/rsdgc-sim run $(SCENARIO) --out $(OUT)

# ruff, and the layers: import-linter's contracts in pyproject.toml
lint: install-test
	$(BIN)/ruff check rsdgc_sim tests benchmarks
	$(BIN)/lint-imports --no-cache

# one torch thread per process and one pytest worker per core, idle workers stealing tests
# (torch's own threads would oversubscribe the cores; a third worker on 2 cores is slower;
# tests/conftest.py starts the slow groups first): the 2-core VM runs the suite in about
# 2.2-2.9 min, nothing else running. PYTHONDONTWRITEBYTECODE is cleared so that pytest keeps its
# rewritten test modules in tests/__pycache__ (else every worker rewrites all of them, every
# run: ~5 s of CPU each)
PYTEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
test: install-test datasets lint
	PYTHONDONTWRITEBYTECODE= OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

# the README's regenerated outputs (teaching scenarios, compare) and its images, from the
# code; measured blocks: docs/regenerate.py --measured NAME
docs: install
	$(BIN)/python docs/regenerate.py

bench: install
	$(BIN)/python benchmarks/compressors.py
	$(BIN)/python benchmarks/simulator.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache build *.egg-info
