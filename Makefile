# The set-up commands of the README. Each creates/refreshes .venv first (pinned by constraints.txt).
VENV ?= .venv
PY := $(VENV)/bin/python
LINT := $(PY) -m ruff check code tests benchmarks scripts

.PHONY: demo demo-long test test-fast test-long test-real-size lint env constraints browser

env:
	bash scripts/setup_env.sh

# Main job on the embedded default: synthetic data -> ... -> submissions/submission.csv
demo: env
	$(PY) code/demo.py $(DEMO_ARGS)

# The same with longer trainings (a better model): code/demo.py --long.
demo-long: env
	$(PY) code/demo.py --long $(DEMO_ARGS)

# A real headless browser for the overlay test (tests/test_video.py): Debian's chromium, installed
# where apt-get works (as root); elsewhere that test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: no chromium and no apt-get as root: the overlay browser test will skip"

# Test processes (pytest-xdist): a test module runs in one process (--dist loadfile), the learned
# runs' modules first (--no-loadscope-reorder keeps tests/conftest.py's order); each process's
# trainings get an equal share of the cores; a shared run is built once per session
# (tests/conftest.py: shared_once).
TEST_WORKERS ?= auto

# Linter + the whole test suite (slow learning tests included): what CI runs.
test: env browser
	$(LINT)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The whole suite plus the long tier (the 1000-iteration R-CNN learning run; CPU tens of minutes).
test-long: env browser
	$(LINT)
	$(PY) -m pytest --long -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The real-size tier alone: every shipped real config (R50, X101, HRNet-W32/W48) trains 2 iterations
# at 1920x1080, predicts with flip TTA and ensembles, with its peak memory and s/iter printed
# (~10 CPU-minutes on 2 cores: CI runs it after `make test`, as a stage of its own).
test-real-size: env
	$(PY) -m pytest --real-size -s tests/test_real_size.py $(PYTEST_ARGS)

# Linter + the fast tier (unit and small in-process tests): run it after every change.
test-fast: env
	$(LINT)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

lint: env
	$(LINT)

# Rewrite constraints.txt from a fresh, unconstrained venv that passed the suite (FAST=1: fast tier).
constraints:
	bash scripts/refresh_constraints.sh
