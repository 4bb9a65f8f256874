# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; on a CUDA machine use e.g. `make run TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
SCENARIO ?=
OUT ?= out

.PHONY: run test install install-test lint bench clean

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

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/rsdgc-sim run $(SCENARIO) --out $(OUT)

lint: install-test
	$(BIN)/ruff check rsdgc_sim tests benchmarks

# one torch thread per process and one pytest worker per core, idle workers stealing tests:
# 2 cores run the suite in ~1.6 min instead of ~2.3 min (torch's own threads would
# oversubscribe the cores)
PYTEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
test: install-test lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

bench: install
	$(BIN)/python benchmarks/compressors.py
	$(BIN)/python benchmarks/simulator.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache build *.egg-info
