# The route for machines without pixi: every target creates .venv on first use.
#   make s01                  check your step 01 (make s01 ARGS=--solution, ARGS="--file my.py --json")
#   make test                 the project's own test suite
#   make compare NN=03        your step 03 next to the solution
# `pixi run <task>` runs the same commands (a test keeps the two lists in step).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
ARGS ?=
NN ?= 01
STEPS := s01 s02 s03 s04 s05 s06

.PHONY: $(STEPS) test compare book figures bench fmt lint clean

$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docs,dev]'
	touch $@

$(STEPS): $(READY)
	$(PY) -m tests.check $(patsubst s%,%,$@) $(ARGS)

test: $(READY)
	$(PY) -m pytest $(ARGS)

compare: $(READY)
	$(PY) -m tests.check.compare $(NN) $(ARGS)

book: $(READY)
	$(PY) -m docs.build $(ARGS)

figures: $(READY)
	$(PY) -m docs.figures $(ARGS)

bench: $(READY)
	$(PY) -m bench.run $(ARGS)

fmt: $(READY)
	$(PY) -m ruff format .

lint: $(READY)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) docs/book .pytest_cache
