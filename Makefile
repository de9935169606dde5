# One command to install and run the service (`make run`), one to install and run the tests (`make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: install run test lint bench

$(BIN)/dallmi: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/dallmi

install: $(BIN)/dallmi

run: install
	$(BIN)/dallmi serve

test: install
	bash scripts/services.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check dallmi_core app worker tests benchmarks
	$(BIN)/mypy dallmi_core

bench: install
	$(BIN)/python benchmarks/step_cost.py
