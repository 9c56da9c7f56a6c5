# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# torch is installed on its own: a CPU build where the machine provides one, CUDA in GPU images.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
export PATH := $(abspath $(BIN)):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
# Let Python cache bytecode: every Airflow task, Spark driver and trial process re-imports the
# same large libraries, and compiling them from source each time costs seconds per process.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install system-deps demo test test-fast bench bench-data bench-large screenshots up down clean

help:
	@echo "make demo   - set up .venv, run the whole loop on generated data, print where to look"
	@echo "make test   - set up .venv, run the whole test suite"
	@echo "make bench  - run the benchmarks, write docs/benchmarks.md"
	@echo "make bench-data - the data path at 100 k, 1 M and 10 M events, write docs/benchmarks-data.md"
	@echo "make bench-large - 10,000 trials in one sweep, write docs/benchmarks-large.md"
	@echo "make screenshots - drive the results UI in headless Chromium, write docs/images/ui/*.png"

install: system-deps $(VENV)/.installed

# Java, redis-server and PostgreSQL from Debian packages where missing (scripts/install-system-deps).
system-deps:
	@scripts/install-system-deps

# Python >= 3.11.5 (the pinned set needs it) and Java 17+ (PySpark) are checked, not assumed.
$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml | system-deps
	@python=$$(scripts/find-python) || exit 1; \
	  echo "using $$python ($$($$python --version))"; \
	  test -x $(BIN)/python || $$python -m venv $(VENV)
	@scripts/check-java
	$(BIN)/python -m pip install -q --upgrade uv
	$(BIN)/uv pip install -p $(BIN)/python -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	@# Compiled bytecode for every installed library and for include/: every task, trainer and fold
	@# worker is a new interpreter, and where PYTHONDONTWRITEBYTECODE is set (these machines) none
	@# would ever be cached; importing what a batch needs then costs ~3x (docs/benchmarks.md, section 0).
	$(BIN)/uv pip install -p $(BIN)/python --no-deps --compile-bytecode --reinstall-package mlfleet -e .
	$(BIN)/python -m compileall -q include >/dev/null
	@touch $@

demo: install
	$(BIN)/mlfleet demo

# pytest-xdist: test files spread over this many processes (a file's tests stay together, so its
# module fixtures start once). Much of the suite waits on schedulers, servers and subprocesses.
# Files go out in collection order, slow ones first (tests/conftest.py), not xdist's default of
# the files with the most tests first, which left the slowest few to run one after another at the
# end. Measured on 2 cores (2026-12-02, clean clone): 21 min 05 s of tests against 20 min 30 s
# without it. The Spark-heavy files now contend with each other, so the suite is CPU-bound either way.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
# The slowest tests, at the end of every run: where the suite's time goes (issue 12's 12-minute target).
DURATIONS := --durations=25

test: install
	$(BIN)/pytest $(XDIST) $(DURATIONS) $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/run.py

# The data path (feature job, materialize, training sets, drift, online reads) beside what a user could
# do by hand, at 100 k, 1 M and 10 M events; BENCH_DATA_SCALES=100k,1M to iterate on fewer sizes.
bench-data: install
	$(BIN)/python benchmarks/data_bench.py

bench-large: install
	$(BIN)/python benchmarks/run.py --large

# The results UI as a user sees it, from a real `mlfleet up` and sweep (the README shows these).
screenshots: install
	MLFLEET_SCREENSHOT_DIR=$(abspath docs/images/ui) $(BIN)/pytest tests/e2e/test_results_ui_browser.py $(PYTEST_ARGS)

up: install
	$(BIN)/mlfleet up

down:
	$(BIN)/mlfleet down

clean:
	rm -rf $(VENV) .mlfleet .pytest_cache
