# The single command surface: `make run`, `make test`, `make lint`, `make bench`.
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

# The whole test suite (CI runs exactly this).
test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

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

# Long chaos runs (the suite runs them in a bounded quick mode).
soak: setup
	PAUSEPOINT_CHAOS_FULL=1 $(BIN)/pytest tests/chaos -m "slow or not slow"

clean:
	rm -rf $(VENV) .pausepoint .pytest_cache .mypy_cache .ruff_cache
