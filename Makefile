# The single command surface: `make run`, `make test`, `make test-quick`, `make lint`, `make bench`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup run test test-quick lint format bench-setup bench bench-quick bench-peers soak clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The main job: the server (HTTP API, embedded runtime, SQLite) with the examples
# loaded. On first start it prints an admin API key, once.
run: setup
	$(BIN)/pausepoint --db .pausepoint/pausepoint.db server --flows examples

# The whole test suite (CI runs exactly this): everything but the soak on both cores
# (pytest-xdist, each worker with its own servers), then the soak alone, so that its
# latency verdict measures the server rather than the other tests.
test: setup
	$(BIN)/pytest -n 2 -m "not soak"
	$(BIN)/pytest -m soak

# The inner loop: the unit and integration layers, without the Temporal dev server
# (browser, e2e and chaos are left to `make test`); the layers are described in README.
test-quick: setup
	$(BIN)/pytest -m "(unit or integration) and not temporal"

# mypy checks bench/ against the peers it drives (dbos, langgraph, matplotlib): the bench extra.
lint: bench-setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# The peers measured side by side (Temporal, DBOS, LangGraph) come from the `bench` extra.
bench-setup: $(VENV)/.bench-installed

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: bench-setup
	$(PY) bench/run.py

bench-quick: bench-setup
	$(PY) bench/run.py --quick

# Only the side-by-side peers (about half an hour at full size), keeping the rest of
# bench/results.json; README.md and peers.png are regenerated.
bench-peers: bench-setup
	$(PY) bench/run.py --peers-only

# The reliability suites at full length (the test suite runs them in a bounded quick
# mode): crash storms on embedded SQLite and on temporal+postgres (300 executions, 20
# kills each), ten Temporal outages under load, the 30-minute soak, and more
# examples for the race and hostile-input fuzzers. Figures go in docs/RELIABILITY.md.
SOAK_ENV := PAUSEPOINT_CHAOS_FULL=1 PAUSEPOINT_RACES_EXAMPLES=150 \
	PAUSEPOINT_HOSTILE_EXAMPLES=600 PAUSEPOINT_SCHEMATHESIS_EXAMPLES=100
soak: setup
	$(SOAK_ENV) $(BIN)/pytest -s -m "slow or not slow" tests/chaos tests/temporal/test_chaos.py \
		tests/temporal/test_server_restart.py \
		tests/api/test_races.py tests/api/test_hostile.py tests/api/test_schemathesis.py

clean:
	rm -rf $(VENV) .pausepoint .pytest_cache .mypy_cache .ruff_cache
