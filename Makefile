# Everyday targets. `make demo` and `make test` work on a fresh machine: they create the
# virtualenv and install the locked dependencies first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export STREAMFLOW_HOME ?= $(CURDIR)/.streamflow
export DAGSTER_HOME ?= $(STREAMFLOW_HOME)/dagster
PYTEST_ARGS ?=

.PHONY: install demo test lint format unit dev docs db-stop clean manifest

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/streamflow: $(BIN)/uv pyproject.toml uv.lock
	$(BIN)/uv sync --locked --python $(BIN)/python
	@touch $@

install: $(BIN)/streamflow  ## virtualenv + locked dependencies

demo: install  ## the main job: demo data, embedded PostgreSQL, every month, summary
	$(BIN)/streamflow demo

# The suite runs in TEST_WORKERS pytest-xdist workers, one test file per worker at a time
# (--dist loadfile: a file's module fixtures, e.g. one deployment, stay in one worker); each
# worker has its own session state folder and embedded PostgreSQL (tests/conftest.py). Most of
# the suite's time is spent waiting on subprocesses (dbt, the deployment, servers), so three
# workers beat two even on a 2-core machine. The slowest files start first (tests/conftest.py
# SLOW_FILES; --no-loadscope-reorder keeps that order). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 3

test: install lint  ## lint, then the whole test suite on the real stack
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

unit: install  ## the fast tests only (no database)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The browser tour alone (installs Debian's chromium if missing). STREAMFLOW_SCREENSHOTS=1
# also refreshes the README's pictures in docs/screenshots.
.PHONY: e2e
e2e: install  ## the end-to-end browser test: Dagster UI and dbt docs in headless chromium
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dev: install  ## the Dagster UI on http://127.0.0.1:3000 on the local deployment the CLI uses
	$(BIN)/streamflow deploy start --ui 3000
	@echo "Dagster UI: http://127.0.0.1:3000 (\`streamflow deploy stop\` stops the deployment)"

manifest: install  ## parse the dbt project (dbt_project/target/manifest.json) if it changed
	$(BIN)/python -c "from streamflow_dagster.defs.dbt_project import prepare_manifest as p; print(p())"

docs: install  ## dbt docs with the live catalog on http://127.0.0.1:8580
	$(BIN)/streamflow docs

db-stop:
	$(BIN)/streamflow db stop

clean:  ## stop the server and delete all state (database, runs, landing data)
	-$(BIN)/streamflow deploy stop
	-$(BIN)/streamflow db stop
	rm -rf $(STREAMFLOW_HOME)
