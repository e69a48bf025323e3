"""SQLite: one connection on one thread, writes batched into shared transactions.

All statements run on one dedicated thread with one connection, so a
checkpoint costs one thread hop for a whole batch, never one per statement.
Calls that queue while the thread is busy run next as one transaction (group
commit for every kind of write). Write transactions use ``BEGIN IMMEDIATE`` so
that two processes sharing a database file serialise their writes instead of
failing on upgrade; the WAL is copied back into the file by a thread of its own
(``store/wal.py``), off the commit path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from pausepoint.store import wal
from pausepoint.store.database import Database
from pausepoint.store.dialects import SQLITE, driver_cursor, json_loader

R = TypeVar("R")

# Calls that queue while the database thread is busy run next as one
# transaction, at most this many at a time.
SQLITE_BATCH_LIMIT = 256


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for any other URL)."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///"))


class SqliteDatabase(Database):
    """A SQLite file (or ``:memory:``) in WAL mode, driven from one thread."""

    dialect = SQLITE

    def __init__(self, url: str, synchronous: str) -> None:
        self.url = url
        self.synchronous = synchronous
        self.loads = json_loader(SQLITE)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pausepoint-db")
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        # Calls waiting for the database thread, and whether a batch is there.
        self._queue: list[_QueuedCall] = []
        self._draining = False
        self._batching = False  # on the database thread: inside a batch's transaction
        self._batch_wrote = False  # on the database thread: a call of the batch wrote
        self.wal: wal.WalCheckpointer | None = None  # files only: checkpoints the WAL

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        await self.run(self._open)

    def _open(self) -> None:
        path = sqlite_path(self.url)
        if path is not None and str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            self.url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        synchronous = self.synchronous

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Checkpoints run on a thread of their own (store/wal.py), not in commits.
            cursor.execute(f"PRAGMA wal_autocheckpoint={wal.BACKSTOP_PAGES}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

        self._engine = engine
        self._conn = engine.connect()
        self.migrate()
        if path is not None and str(path) != ":memory:":
            self.wal = wal.WalCheckpointer(path, synchronous)
            self.wal.start()

    async def close(self) -> None:
        if self._engine is not None:
            # Alone, after the batch in progress (the thread runs one job at a time).
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self.wal is not None:
            self.wal.stop()
            self.wal = None
        if self._conn is not None:
            self._conn.close()
        if self._engine is not None:
            self._engine.dispose()
        self._conn = None
        self._engine = None

    # -- running calls -----------------------------------------------------------

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_QueuedCall(fn, args, future))
        if not self._draining:
            self._drain_next(loop)
        result: R = await future
        return result

    def _drain_next(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send the calls queued so far to the database thread, as one batch."""
        batch = self._queue[:SQLITE_BATCH_LIMIT]
        del self._queue[:SQLITE_BATCH_LIMIT]
        self._draining = bool(batch)
        if not batch:
            return
        job = loop.run_in_executor(self._executor, self._run_batch, batch)
        job.add_done_callback(lambda done: self._drained(loop, batch, done))

    def _drained(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_QueuedCall],
        done: asyncio.Future[list[tuple[bool, Any]]],
    ) -> None:
        """Back in the loop: hand every call its outcome (one wake-up for the batch)."""
        error = done.exception()
        outcomes = [(False, error)] * len(batch) if error is not None else done.result()
        for call, (ok, value) in zip(batch, outcomes, strict=True):
            if call.future.done():  # its caller was cancelled meanwhile
                continue
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)
        self._drain_next(loop)

    def _run_batch(self, batch: list[_QueuedCall]) -> list[tuple[bool, Any]]:
        """On the database thread: run the calls; two or more share one transaction.

        Each call of a shared transaction runs in a savepoint of its own, so one
        that fails undoes only its own writes; every caller hears back only
        after the commit, so nothing is acknowledged before it is durable.
        """
        if len(batch) == 1:
            return [_outcome(batch[0])]
        conn = self._connection()
        conn.info["write"] = True
        self._batch_wrote = False
        with conn.begin():
            self._batching = True
            try:
                outcomes = [_outcome(call) for call in batch]
            finally:
                self._batching = False
        if self._batch_wrote:
            self._committed()
        return outcomes

    # -- transactions (on the database thread) -------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        conn = self._connection()
        if self._batching:
            with _savepoint(conn):
                yield conn
            self._batch_wrote = True
            return
        conn.info["write"] = True
        with conn.begin():
            yield conn
        self._committed()

    def _committed(self) -> None:
        """After a write transaction committed."""
        if self.wal is not None:
            self.wal.written()  # reads leave the log as it was: nothing to copy

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        conn = self._connection()
        if self._batching:  # inside a batch's transaction already
            yield conn
            return
        conn.info["write"] = False
        with conn.begin():
            yield conn

    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the store is not open")
        return self._conn


@dataclass(frozen=True, slots=True)
class _QueuedCall:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


def _outcome(call: _QueuedCall) -> tuple[bool, Any]:
    try:
        return True, call.fn(*call.args)
    except Exception as error:  # handed to the caller, as if it had run alone
        return False, error


@contextlib.contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """One call's share of a batch transaction: undone alone if it fails."""
    cursor = driver_cursor(conn)
    cursor.execute("SAVEPOINT pausepoint_call")
    try:
        yield
    except BaseException:
        cursor.execute("ROLLBACK TO pausepoint_call")
        cursor.execute("RELEASE pausepoint_call")
        raise
    cursor.execute("RELEASE pausepoint_call")
