# Two entry points: `make demo` (train on the built-in example) and `make test`.
# Both create .venv and install the project with its extras when needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[pacemaker,dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest

demo: $(STAMP)
	rm -rf demo_run  # the demo is a throwaway: a rerun starts afresh
	$(BIN)/mlip-autopipec demo --out demo_run

clean:
	rm -rf $(VENV) demo_run .pytest_cache .mypy_cache .ruff_cache
