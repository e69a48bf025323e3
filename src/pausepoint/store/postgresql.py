"""PostgreSQL: a pool of asyncpg connections, each call in a greenlet of its own.

Each call borrows a connection from an async pool and runs the store's
synchronous statements in a greenlet over asyncpg (``AsyncConnection.run_sync``),
so calls run concurrently, here and in other processes. Writes that SQLite
serialises therefore lock the execution's row first (``SELECT … FOR UPDATE``,
or an ``UPDATE`` that is itself the lock) or use ``ON CONFLICT``; the default
READ COMMITTED isolation lets each later statement see what the lock holder
committed. Other processes hear of new work and new events through
LISTEN/NOTIFY instead of polling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import Connection

from pausepoint.store.database import Database
from pausepoint.store.dialects import (
    EVENTS_CHANNEL,
    POSTGRESQL,
    WORK_CHANNEL,
    asyncpg_url,
    json_loader,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

R = TypeVar("R")

# Connections per process: calls beyond them wait for one.
POSTGRES_POOL_SIZE = 8

# The connection of the call running in this greenlet.
_call_connection: ContextVar[Connection | None] = ContextVar(
    "pausepoint_store_connection", default=None
)


class PostgresDatabase(Database):
    """A PostgreSQL database, shared with other processes."""

    dialect = POSTGRESQL

    def __init__(self, url: str) -> None:
        self.url = url
        self.loads = json_loader(POSTGRESQL)
        self._pool: AsyncEngine | None = None
        self._listeners: list[AsyncConnection] = []

    async def open(self) -> None:
        # Imported here: SQLite users (and every CLI start) need not load asyncio support.
        from sqlalchemy.ext.asyncio import create_async_engine

        self._pool = create_async_engine(
            asyncpg_url(self.url), pool_size=POSTGRES_POOL_SIZE, max_overflow=0
        )
        await self.run(self.migrate)

    async def close(self) -> None:
        for listener in self._listeners:
            # The connection carries LISTENs: drop it rather than return it to the pool.
            with contextlib.suppress(Exception):
                await listener.invalidate()
            await listener.close()
        self._listeners.clear()
        if self._pool is not None:
            await self._pool.dispose()
            self._pool = None

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        async with self._pool.connect() as conn:
            return await conn.run_sync(_run_on, fn, *args)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        conn = _connection()
        with conn.begin():
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        conn = _connection()
        # Reads run without BEGIN/COMMIT (two round trips saved), so each statement
        # of a read sees its own snapshot. The pool resets the connection when the
        # call returns it.
        conn.execution_options(isolation_level="AUTOCOMMIT")
        with conn.begin():
            yield conn

    async def listen(
        self,
        on_work: Callable[[str], None],
        *,
        on_events: Callable[[str], None] | None = None,
    ) -> bool:
        if self._pool is None:
            return False
        conn = await self._pool.connect()
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        callbacks = {WORK_CHANNEL: on_work, EVENTS_CHANNEL: on_events}
        for channel, callback in callbacks.items():
            if callback is not None:
                await driver.add_listener(channel, _listener(callback))
        self._listeners.append(conn)
        return True


def _connection() -> Connection:
    conn = _call_connection.get()
    if conn is None:
        raise RuntimeError("the store is not open")
    return conn


def _run_on(conn: Connection, fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn`` (inside ``AsyncConnection.run_sync``) with ``conn`` as the call's connection."""
    token = _call_connection.set(conn)
    try:
        return fn(*args)
    finally:
        _call_connection.reset(token)


def _listener(callback: Callable[[str], None]) -> Callable[[Any, int, str, str], None]:
    """An asyncpg notification listener that hands ``callback`` the execution id."""

    def notified(_conn: Any, _pid: int, _channel: str, execution_id: str) -> None:
        callback(execution_id)

    return notified
