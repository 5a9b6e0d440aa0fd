# Entry points: `make demo` (train on the built-in example), `make demo-loop` (the active-learning
# loop on EMT Cu) and `make test`.
# Each creates .venv and installs the project with its extras when needed.
# `make test-nopace`: the spec's "pacemaker is not installed" scenario, in .venv-nopace.
# `make docs`: the documentation site from docs/ into site/ (mkdocs, warnings are errors).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOPACE := .venv-nopace
NOPACE_STAMP := $(NOPACE)/.installed

.PHONY: demo demo-loop test test-nopace lint install docs clean

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

# pytest-xdist: two workers (CI has 2 cores; `make test PYTEST_WORKERS=4` for more), each test
# module whole in one worker (its module-scoped real fits made once); the SLURM tests take turns
# (a lock: tests/cluster/conftest.py).
PYTEST_WORKERS ?= 2
PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile

# The full suite: a test that needs pacemaker fails here instead of being skipped.
test: lint
	MLIP_REQUIRE_PACEMAKER=1 $(BIN)/pytest $(PARALLEL)

# Without the pacemaker extra (no pyace, no pacemaker programs): the mock trainer, the fake-program
# flow, config, data and report run; tests that need pacemaker are skipped, each with its reason.
$(NOPACE)/bin/python:
	$(PYTHON) -m venv $(NOPACE)
	$(NOPACE)/bin/python -m pip install --quiet --upgrade pip

$(NOPACE_STAMP): pyproject.toml | $(NOPACE)/bin/python
	$(NOPACE)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(NOPACE_STAMP)

test-nopace: $(NOPACE_STAMP)
	$(NOPACE)/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('pyace') and 'pyace is installed in $(NOPACE): not the scenario')"
	$(NOPACE)/bin/pytest -m "not slow and not cluster" $(PARALLEL)

# The docs extra (mkdocs) goes into the same .venv, with its own stamp.
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

# NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on every build.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

demo: $(STAMP)
	rm -rf demo_run  # the demo is a throwaway: a rerun starts afresh
	$(BIN)/mlip-autopipec demo --out demo_run

# The active-learning loop on EMT Cu: explore, select, label, train (a few minutes on 2 cores).
demo-loop: $(STAMP)
	rm -rf demo_loop  # a throwaway too
	$(BIN)/mlip-autopipec demo --loop --out demo_loop

clean:
	rm -rf $(VENV) $(NOPACE) demo_run demo_loop site .pytest_cache .mypy_cache .ruff_cache
