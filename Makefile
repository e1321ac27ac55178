# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Each creates its own virtual environment in .venv if it is absent.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup clean bench bench-quick

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job: every architecture through the same experiments, a report with plots.
demo: $(STAMP)
	$(VENV)/bin/python -m zenserve compare --quick --out zenserve-report
	@echo "Open zenserve-report/report.html in a browser (data: results.json, results.csv)."

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest

# Benchmarks print tables and record them in benchmarks/RESULTS.md (minutes; quiet machine please).
bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run_all.py

bench-quick: $(STAMP)
	$(VENV)/bin/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) zenserve-report .pytest_cache .mypy_cache
