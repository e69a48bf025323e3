"""PostgreSQL: a pool of asyncpg connections, each call in a greenlet of its own.

Each call borrows a connection from an async pool and runs the store's
synchronous statements in a greenlet over asyncpg (``AsyncConnection.run_sync``),
so calls run concurrently, here and in other processes. Writes that SQLite
serialises therefore lock the execution's row first (``SELECT … FOR UPDATE``,
or an ``UPDATE`` that is itself the lock) or use ``ON CONFLICT``; the default
READ COMMITTED isolation lets each later statement see what the lock holder
committed. Other processes hear of new work and new events through
LISTEN/NOTIFY instead of polling.

When the server goes away (a restart, ``pg_terminate_backend``, a network cut),
a call fails fast with :class:`~pausepoint.errors.StoreUnavailable` (HTTP 503
with ``Retry-After``) instead of hanging or surfacing a driver error: its
broken connection is dropped from the pool, and every pooled connection is
pinged before use, so the first call after the server is back reconnects. Only
errors of the connection itself are mapped so; a constraint violation is still
the error it was. The LISTEN connection is watched and re-established with
back-off, and the listeners are then told to look for what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy.exc
from sqlalchemy.engine import Connection

from pausepoint.errors import StoreUnavailable
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

log = logging.getLogger("pausepoint.store")

# Connections per process: calls beyond them wait for one.
POSTGRES_POOL_SIZE = 8
# A server that does not answer a connection attempt within this is taken for down:
# far below an HTTP client's patience, so a request answers 503 rather than hanging.
CONNECT_TIMEOUT_SECONDS = 5.0
# How long a call waits for a free pooled connection before it is refused with a 503.
POOL_TIMEOUT_SECONDS = 10.0
# A statement the server has not answered within this is taken for a lost connection
# (a half-open TCP connection never errors by itself). Far above any statement the
# store sends: each is bounded (pages, batches).
STATEMENT_TIMEOUT_SECONDS = 60.0
# A call that PostgreSQL rolled back as a deadlock victim is run again up to this often.
TRANSIENT_ATTEMPTS = 3
# Re-establishing the LISTEN connection: first wait, and the ceiling it doubles to.
LISTEN_RETRY_FIRST_SECONDS = 0.2
LISTEN_RETRY_CEILING_SECONDS = 2.0
# How often the LISTEN connection is checked when no notification comes.
LISTEN_CHECK_SECONDS = 2.0

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
        self._listeners: list[_Listening] = []

    async def open(self) -> None:
        # Imported here: SQLite users (and every CLI start) need not load asyncio support.
        from sqlalchemy.ext.asyncio import create_async_engine

        self._pool = create_async_engine(
            asyncpg_url(self.url),
            pool_size=POSTGRES_POOL_SIZE,
            max_overflow=0,
            # After a restart every pooled connection is dead: a ping on checkout replaces
            # it, so calls after the server is back do not fail once per stale connection.
            pool_pre_ping=True,
            pool_timeout=POOL_TIMEOUT_SECONDS,
            connect_args={
                "timeout": CONNECT_TIMEOUT_SECONDS,
                "command_timeout": STATEMENT_TIMEOUT_SECONDS,
            },
        )
        await self.run(self.migrate)

    async def close(self) -> None:
        for listener in self._listeners:
            await listener.stop()
        self._listeners.clear()
        if self._pool is not None:
            await self._pool.dispose()
            self._pool = None

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                return await self._run_once(fn, *args)
            except Exception as error:
                # PostgreSQL rolled the whole transaction back and asks for it again; each
                # store call is one transaction (never two), so it runs again as a whole.
                if attempt == TRANSIENT_ATTEMPTS or not _transient(error):
                    raise
                log.info("store call rolled back (%s); running it again", type(error).__name__)
        raise AssertionError("unreachable")

    async def _run_once(self, fn: Callable[..., R], *args: Any) -> R:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        try:
            async with self._pool.connect() as conn:
                try:
                    return await conn.run_sync(_run_on, fn, *args)
                except BaseException as error:
                    if connection_lost(error):
                        # Not back into the pool: the next call gets a fresh connection.
                        with contextlib.suppress(Exception):
                            await conn.invalidate()
                    raise
        except Exception as error:
            if connection_lost(error):
                raise unavailable(error) from error
            raise

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
        """Keep a connection LISTENing, re-established with back-off whenever it is lost.

        Once it listens again, ``on_work("")`` and ``on_events("")`` are called: what
        was notified meanwhile is lost, so the listeners look for it themselves (the
        runtime polls for work, followers read the events of what they follow)."""
        if self._pool is None:
            return False
        listening = _Listening(self._pool, on_work, on_events)
        await listening.start()
        self._listeners.append(listening)
        return True


class _Listening:
    """One dedicated LISTEN connection and the task that keeps it alive."""

    def __init__(
        self,
        pool: AsyncEngine,
        on_work: Callable[[str], None],
        on_events: Callable[[str], None] | None,
    ) -> None:
        self._pool = pool
        self._callbacks = {WORK_CHANNEL: on_work, EVENTS_CHANNEL: on_events}
        self._conn: AsyncConnection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # How many times the connection was lost and listened again (for tests and ops).
        self.reconnects = 0

    async def start(self) -> None:
        """Listen now (raising if the server cannot be reached), then keep listening."""
        await self._connect()
        self._task = asyncio.create_task(self._keep(), name="pausepoint-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop()

    async def _connect(self) -> None:
        try:
            conn = await self._pool.connect()
        except Exception as error:
            if connection_lost(error):
                raise unavailable(error) from error
            raise
        try:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            for channel, callback in self._callbacks.items():
                if callback is not None:
                    await driver.add_listener(channel, _listener(callback))
            driver.add_termination_listener(lambda _conn: self._lost.set())
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        self._conn = conn
        self._lost.clear()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # The connection carries LISTENs: drop it rather than return it to the pool.
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()

    async def _alive(self) -> bool:
        """Whether the connection still answers (a killed backend or a cut network does
        not always reach the termination listener until the next statement)."""
        conn = self._conn
        if conn is None or self._lost.is_set():
            return False
        try:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            if driver.is_closed():
                return False
            await asyncio.wait_for(driver.execute("SELECT 1"), CONNECT_TIMEOUT_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception:
            return False
        return True

    async def _keep(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), LISTEN_CHECK_SECONDS)
            if await self._alive():
                continue
            log.warning("the LISTEN connection to PostgreSQL was lost; reconnecting")
            await self._drop()
            delay = LISTEN_RETRY_FIRST_SECONDS
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    delay = min(delay * 2, LISTEN_RETRY_CEILING_SECONDS)
            self.reconnects += 1
            log.warning("listening to PostgreSQL again; catching up on what was missed")
            for callback in self._callbacks.values():
                if callback is not None:
                    callback("")


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` means the server could not be reached or the connection broke
    (as opposed to a statement the server refused: those keep their own meaning)."""
    # Imported here: asyncpg is loaded only by processes that use PostgreSQL.
    import asyncpg.exceptions as pg

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sqlalchemy.exc.TimeoutError):  # no pooled connection in time
            return True
        if isinstance(
            current,
            pg.PostgresConnectionError
            | pg.OperatorInterventionError  # shutdown, restart, "cannot connect now"
            | pg.TooManyConnectionsError
            | OSError  # refused, reset, no route: also ConnectionError, socket errors
            | TimeoutError,
        ):
            return True
        if isinstance(current, pg.InterfaceError) and "closed" in str(current):
            return True
        if isinstance(current, pg.InternalClientError) and "in progress" in str(current):
            # The server failed a statement and closed before the protocol recovered
            # ("cannot switch to state …; another operation is in progress"): a store
            # call never shares its connection, so only a broken one ends up there.
            return True
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else current.__cause__ or current.__context__
        )
    return False


def _transient(error: BaseException) -> bool:
    """A deadlock or serialization failure: PostgreSQL's "run the transaction again"."""
    import asyncpg.exceptions as pg

    orig = getattr(error, "orig", None)
    cause = orig.__cause__ if isinstance(orig, BaseException) else None
    return isinstance(cause or orig or error, pg.DeadlockDetectedError | pg.SerializationError)


def unavailable(error: BaseException) -> StoreUnavailable:
    """The 503 for a connection error: what happened, without the driver's internals."""
    root: BaseException = error
    while isinstance(getattr(root, "orig", None), BaseException):
        root = root.orig  # type: ignore[attr-defined]
    detail = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
    return StoreUnavailable(f"the database cannot be reached: {detail[:200]}")


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
