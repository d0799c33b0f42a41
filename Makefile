# The set-up commands of the README. Each creates/refreshes .venv first (pinned by constraints.txt).
VENV ?= .venv
PY := $(VENV)/bin/python
LINT := $(PY) -m ruff check code tests benchmarks scripts setup.py

.PHONY: demo demo-long test test-fast lint env constraints

env:
	bash scripts/setup_env.sh

# Main job on the embedded default: synthetic data -> ... -> submissions/submission.csv
demo: env
	$(PY) code/demo.py $(DEMO_ARGS)

# The same with longer trainings (a better model): code/demo.py --long.
demo-long: env
	$(PY) code/demo.py --long $(DEMO_ARGS)

# Linter + the whole test suite (slow learning tests included): what CI runs.
test: env
	$(LINT)
	$(PY) -m pytest $(PYTEST_ARGS)

# Linter + the fast tier (unit and small in-process tests): run it after every change.
test-fast: env
	$(LINT)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: env
	$(LINT)

# Rewrite constraints.txt from a fresh, unconstrained venv that passed the suite (FAST=1: fast tier).
constraints:
	bash scripts/refresh_constraints.sh
