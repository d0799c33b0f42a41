# The two set-up commands of the README. Each creates/refreshes .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint env

env:
	bash scripts/setup_env.sh

# Main job on the embedded default: synthetic data -> ... -> submissions/submission.csv
demo: env
	$(PY) code/demo.py $(DEMO_ARGS)

# Linter + the whole test suite (slow learning tests included).
test: env
	$(PY) -m ruff check code tests benchmarks scripts setup.py
	$(PY) -m pytest $(PYTEST_ARGS)

lint: env
	$(PY) -m ruff check code tests benchmarks scripts setup.py
