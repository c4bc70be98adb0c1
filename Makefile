# Entry points of the project; `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WAREHOUSE ?= data/warehouse
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## List the make targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "python 3.11+ is needed"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# A DuckDB 1.0 client, to prove the warehouse database opens in the oldest 1.x release.
DUCKDB1 := $(VENV)/duckdb1
$(DUCKDB1)/.installed: requirements-duckdb1.lock | $(STAMP)
	$(PYTHON) -m venv $(DUCKDB1)
	$(DUCKDB1)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-duckdb1.lock
	@touch $@

setup: $(STAMP) ## Create .venv with the pinned dependencies and install the project

run: $(STAMP) ## Ingest the bundled sample exports in data/ into data/warehouse/, show per-agent stats
	$(BIN)/sessions ingest data/samples --warehouse $(WAREHOUSE)
	@echo
	$(BIN)/sessions stats --by agent --warehouse $(WAREHOUSE) --format table

# The Spark engine (`--engine spark`): pyspark, pinned with the main requirements, and Java 17
# where there is none (installed with apt-get when root; otherwise say how).
SPARK_STAMP := $(VENV)/.spark-installed
$(SPARK_STAMP): requirements-spark.lock | $(STAMP)
	@command -v java >/dev/null || [ -x "$$JAVA_HOME/bin/java" ] || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && apt-get install -y -q openjdk-17-jre-headless; \
		else echo "Spark needs Java 17: install openjdk-17-jre-headless (or set JAVA_HOME)"; exit 1; fi; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-spark.lock
	@touch $@

spark: $(SPARK_STAMP) ## Install the Spark engine (pyspark, and Java 17 where missing)

test: $(STAMP) $(DUCKDB1)/.installed $(SPARK_STAMP) ## Lint, type-check and run the tests
	$(BIN)/ruff check pipeline schemas tests bench
	$(BIN)/ruff format --check pipeline schemas tests bench
	$(BIN)/mypy pipeline schemas
	# A test file's tests on one worker: their module fixtures (a Spark session, a built
	# warehouse) are made once, not once a worker. (`--dist loadgroup` no longer groups with
	# pytest 9: xdist 3.8 renames `item._nodeid`, which pytest 9 does not read.)
	$(BIN)/pytest -q -n 2 --dist loadfile

BENCH_ARGS ?=
bench: $(STAMP) ## Benchmark ingest against DuckDB's reader and its peers (polars, pandas, dlt, Spark) (BENCH_ARGS="--scale 0.05 --repeat 1" for a quick run)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-bench.lock
	$(BIN)/python bench/run.py $(BENCH_ARGS)

notebook: $(STAMP) ## Start JupyterLab on the project's environment (installs it, pinned, on first use)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-notebook.lock
	SESSIONS_WAREHOUSE=$(abspath $(WAREHOUSE)) $(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

report: $(STAMP) ## Write report.html from the warehouse (make run first)
	$(BIN)/sessions report --warehouse $(WAREHOUSE) --out report.html

samples: $(STAMP) ## Regenerate the bundled sample exports (deterministic)
	rm -rf data/samples
	$(BIN)/sessions generate data/samples --sessions 3000 --seed 7

lock: ## Re-pin the lock files from the .in files (needs network)
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile requirements.in --generate-hashes --python-version 3.11 --universal -o requirements.lock
	cat requirements.in requirements-notebook.in | $(PYTHON) -m uv pip compile - --generate-hashes --python-version 3.11 --universal -o requirements-notebook.lock
	cat requirements.in requirements-bench.in | $(PYTHON) -m uv pip compile - --generate-hashes --python-version 3.11 --universal -o requirements-bench.lock
	cat requirements.in requirements-spark.in | $(PYTHON) -m uv pip compile - --generate-hashes --python-version 3.11 --universal -o requirements-spark.lock
	$(PYTHON) -m uv pip compile requirements-duckdb1.in --generate-hashes --python-version 3.11 -o requirements-duckdb1.lock

clean: ## Remove the virtualenv and the default warehouse
	rm -rf $(VENV) $(WAREHOUSE)

.PHONY: help setup run test bench notebook report samples lock clean spark
