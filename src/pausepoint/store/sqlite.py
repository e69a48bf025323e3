"""SQLite: one connection, driven from the event loop's thread, writes batched.

A statement on a local SQLite file costs microseconds: less than handing it to a
thread and back (two wake-ups, and a GIL the busy loop gives up only every few
milliseconds). So calls run on the loop's own thread, not in an executor. A call
is queued and runs at the loop's next turn together with every call queued
meanwhile, as one transaction (group commit for every kind of write): a
thousand executions that checkpoint in one turn share one commit. Write
transactions use ``BEGIN IMMEDIATE`` so that two processes sharing a database
file serialise their writes instead of failing on upgrade; the WAL is copied
back into the file by a thread of its own (``store/wal.py``), off the commit
path.

The price: while a batch runs, the loop waits for it, as it would for any
Python code. A batch is bounded (``SQLITE_BATCH_LIMIT`` calls). A write that
finds another process holding the write lock waits in SQLite's busy handler,
which sleeps 1, 2, 5, 10… ms between tries: processes that write the same file
often (``pausepoint server --workers``) stall each other's loops that long.

A disk that fills or a file system that turns read-only makes writes fail while
reads still work. Such a failure is answered as :class:`StoreUnavailable` (HTTP
503, "the database cannot be written: disk full"), never as an internal error,
and nothing of it holds: SQLite may undo a whole transaction on such an error,
so a batch that meets one is undone entirely and its calls run again one by one,
each in a transaction of its own (reads answer, writes hear the 503). After an
I/O error the connection is replaced before the next call, as SQLite may leave
it in an error state; once space returns, writes work again without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from pausepoint.errors import StoreUnavailable
from pausepoint.store import sqlite_notify, wal
from pausepoint.store.database import Database
from pausepoint.store.dialects import (
    EVENTS_CHANNEL,
    SQLITE,
    WORK_CHANNEL,
    driver_cursor,
    json_loader,
)

R = TypeVar("R")

log = logging.getLogger(__name__)

# Calls queued in one turn of the loop run at the next as one transaction, at most
# this many at a time.
SQLITE_BATCH_LIMIT = 256
# How long the reason an I/O error was probed for is reused (seconds).
DIAGNOSIS_TTL = 1.0


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for any other URL)."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///"))


class SqliteDatabase(Database):
    """A SQLite file (or ``:memory:``) in WAL mode, driven from the event loop's thread."""

    dialect = SQLITE
    batches_calls = True

    def __init__(self, url: str, synchronous: str) -> None:
        self.url = url
        self.synchronous = synchronous
        self.loads = json_loader(SQLITE)
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        # Calls waiting for the next batch, and whether that batch is scheduled.
        self._queue: list[_QueuedCall] = []
        self._scheduled = False
        self._batching = False  # inside a batch's transaction
        self._batch_wrote = False  # a call of the batch wrote
        self.wal: wal.WalCheckpointer | None = None  # files only: checkpoints the WAL
        # Files only: tells other processes what commits changed (store/sqlite_notify.py).
        self.announcer: sqlite_notify.Announcer | None = None
        self._listeners: list[sqlite_notify.Listener] = []
        # An I/O error may leave SQLite's connection unusable: replaced before the next call.
        self._reconnect_due = False
        self._diagnosis: tuple[float, str | None] | None = None  # when, and why writes fail

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        self._open()

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
            # A Core statement run inside ``read``/``write`` autobegins: the driver is
            # in that transaction already.
            if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN")

        self._engine = engine
        self._conn = engine.connect()
        self.migrate()
        if path is not None and str(path) != ":memory:":
            self.wal = wal.WalCheckpointer(path, synchronous)
            self.wal.start()
            if sqlite_notify.SUPPORTED:
                self.announcer = sqlite_notify.Announcer(sqlite_notify.notify_directory(path))
                self.announcer.attach(self._conn.info)

    async def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        if self._engine is not None:
            self._close()
        for call in self._queue:  # queued after the last batch: the store is closing
            if not call.future.done():
                call.future.set_exception(RuntimeError("the store is closed"))
        self._queue.clear()

    def _close(self) -> None:
        if self.wal is not None:
            self.wal.stop()
            self.wal = None
        if self.announcer is not None:
            self.announcer.close()
            self.announcer = None
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
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run_queued)
        result: R = await future
        return result

    def _run_queued(self) -> None:
        """Run the calls queued so far, as one batch, and hand each its outcome."""
        batch = self._queue[:SQLITE_BATCH_LIMIT]
        del self._queue[:SQLITE_BATCH_LIMIT]
        # A call whose caller was cancelled meanwhile still runs, as it would have had it
        # started first: callers count on a write they began being done or not, whole.
        try:
            outcomes = self._run_batch(batch) if batch else []
        except Exception as error:  # BEGIN or COMMIT failed: nothing of the batch holds
            outcomes = [(False, self.write_fault(error) or error)] * len(batch)
        finally:
            self._scheduled = bool(self._queue)
            if self._scheduled:
                asyncio.get_running_loop().call_soon(self._run_queued)
        for call, (ok, value) in zip(batch, outcomes, strict=True):
            if call.future.done():
                continue
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)

    def _run_batch(self, batch: list[_QueuedCall]) -> list[tuple[bool, Any]]:
        """Run the calls; two or more share one transaction.

        Each call of a shared transaction runs in a savepoint of its own, so one
        that fails undoes only its own writes; every caller hears back only
        after the commit, so nothing is acknowledged before it is durable. A write
        the disk refuses (full, read-only) undoes the whole batch: its calls then
        run again one at a time, so that each hears its own outcome.
        """
        if len(batch) == 1:
            return [self._run_alone(batch[0])]
        conn = self._connection()
        raw = conn.connection.driver_connection
        assert raw is not None
        self._batch_wrote = False
        try:
            with _transaction(conn, write=True):
                self._batching = True
                try:
                    outcomes = [self._run_in_batch(call, raw) for call in batch]
                finally:
                    self._batching = False
        except _BatchUndone:
            # The batch's transaction is gone (undone by SQLite, or about to be): what
            # its calls wrote does not hold, and none was answered. Alone, each call
            # gets its own outcome: reads still answer, writes hear the 503.
            return [self._run_alone(call) for call in batch]
        except Exception as error:
            if self.write_fault(error) is None:
                raise
            return [self._run_alone(call) for call in batch]  # the COMMIT could not be written
        if self._batch_wrote:
            self._committed()
        return outcomes

    def _run_in_batch(self, call: _QueuedCall, raw: sqlite3.Connection) -> tuple[bool, Any]:
        ok, value = _outcome(call)
        # A full disk or an I/O error may have undone the whole transaction, the writes
        # of the calls before this one included; later statements would run outside it.
        if not raw.in_transaction or (not ok and self.write_fault(value) is not None):
            raise _BatchUndone
        return ok, value

    def _run_alone(self, call: _QueuedCall) -> tuple[bool, Any]:
        ok, value = _outcome(call)
        if not ok:
            value = self.write_fault(value) or value
        return ok, value

    # -- a disk that fills, a file system that turns read-only ---------------------------

    def write_fault(self, error: BaseException) -> StoreUnavailable | None:
        """The 503 for ``error`` when it says the file cannot be written just now (a
        full disk, a read-only file system, an I/O error); None for any other error."""
        if isinstance(error, StoreUnavailable):
            return error
        code = _sqlite_error_code(error)
        if code is None:
            return None
        primary = code & 0xFF
        if primary == sqlite3.SQLITE_FULL:
            reason = "disk full"
        elif primary == sqlite3.SQLITE_READONLY:
            # Also what a file opened read-only (its permissions) answers: the probe tells.
            reason = self._probe() or "the database file is read-only (check its permissions)"
        elif primary == sqlite3.SQLITE_IOERR:
            self._reconnect_due = True
            reason = self._probe() or "a disk I/O error"
        else:
            return None
        fault = StoreUnavailable(f"the database cannot be written: {reason}")
        fault.__cause__ = error
        return fault

    def _probe(self) -> str | None:
        """Why a file beside the database cannot be written (None: it can), probed at
        most once a second: SQLite's errors do not say (its errno is not exposed), and
        a batch whose calls all fail would otherwise probe, and fsync, once per call."""
        now = time.monotonic()
        if self._diagnosis is not None and now - self._diagnosis[0] < DIAGNOSIS_TTL:
            return self._diagnosis[1]
        path = sqlite_path(self.url)
        reason = write_probe(path) if path is not None and str(path) != ":memory:" else None
        self._diagnosis = (now, reason)
        return reason

    def _reconnect(self) -> None:
        """Replace the connection after an I/O error (SQLite may keep it in an error
        state, or in a transaction it could not roll back)."""
        assert self._engine is not None
        self._reconnect_due = False
        old, self._conn = self._conn, None
        with contextlib.suppress(Exception):
            if old is not None:
                old.close()
        with contextlib.suppress(Exception):
            self._engine.dispose()  # closes the pool's one driver connection
        try:
            self._conn = self._engine.connect()
        except Exception as error:
            self._reconnect_due = True
            raise self.write_fault(error) or StoreUnavailable(
                f"the database cannot be opened: {error}"
            ) from error
        log.warning("reconnected to %s after an I/O error", self.url)
        if self.announcer is not None:
            self.announcer.attach(self._conn.info)

    # -- transactions ------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        conn = self._connection()
        if self._batching:
            with _savepoint(conn):
                yield conn
            self._batch_wrote = True
            return
        with _transaction(conn, write=True):
            yield conn
        self._committed()

    def _committed(self) -> None:
        """After a write transaction committed."""
        if self.wal is not None:
            self.wal.written()  # reads leave the log as it was: nothing to copy
        if self.announcer is not None:
            self.announcer.committed()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        conn = self._connection()
        if self._batching:  # inside a batch's transaction already
            yield conn
            return
        with _transaction(conn, write=False):
            yield conn

    def _connection(self) -> Connection:
        if self._engine is None:
            raise RuntimeError("the store is not open")
        if not self._batching and (self._reconnect_due or self._conn is None):
            self._reconnect()
        assert self._conn is not None
        return self._conn

    # -- notifications from other processes ---------------------------------------------

    async def listen(
        self,
        on_work: Callable[[str], None],
        *,
        on_events: Callable[[str], None] | None = None,
    ) -> bool:
        """Hear what other processes sharing the file commit (``store/sqlite_notify.py``);
        False for ``:memory:``, which no other process shares."""
        if self.announcer is None:
            return False
        callbacks = {WORK_CHANNEL: on_work}
        if on_events is not None:
            callbacks[EVENTS_CHANNEL] = on_events
        listener = sqlite_notify.Listener(self.announcer.directory, callbacks)
        self.announcer.skip(listener.path)  # what this process commits, it knows
        listener.start()
        self._listeners.append(listener)
        return True


@dataclass(frozen=True, slots=True)
class _QueuedCall:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


class _BatchUndone(Exception):
    """A batch's transaction was undone by a write that could not be made."""


def _sqlite_error_code(error: BaseException) -> int | None:
    """SQLite's extended result code behind ``error`` (wrapped by SQLAlchemy, or the
    context of an error raised while handling it), None when there is none."""
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return None
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            if isinstance(code, int):
                return code
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else current.__cause__ or current.__context__
        )
    return None


def write_probe(path: Path) -> str | None:
    """Why a file beside ``path`` cannot be written ("disk full", "the file system is
    read-only", …), None when it can: a small file is written, synced and removed."""
    probe = path.parent / f".{path.name}.probe-{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    except OSError as error:
        if error.errno == errno.EROFS:
            return "the file system is read-only"
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return "disk full"
        return f"a disk I/O error ({os.strerror(error.errno or errno.EIO)})"
    return None


def _outcome(call: _QueuedCall) -> tuple[bool, Any]:
    try:
        return True, call.fn(*call.args)
    except Exception as error:  # handed to the caller, as if it had run alone
        return False, error


@contextlib.contextmanager
def _transaction(conn: Connection, *, write: bool) -> Iterator[None]:
    """One transaction, begun and ended through the driver.

    SQLAlchemy's own begin and commit cost more than SQLite's commit itself. Core
    statements run inside still work: their autobegin finds the driver in this
    transaction (see ``_begin``), and is closed with it.
    """
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:  # the block or the commit failed (a full disk, say)
            raw.execute("ROLLBACK")  # if this fails too, the connection is replaced
        if conn.in_transaction():
            conn.rollback()
        raise
    if conn.in_transaction():
        conn.commit()  # SQLAlchemy's record of the autobegun transaction; the driver's is over


@contextlib.contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """One call's share of a batch transaction: undone alone if it fails."""
    cursor = driver_cursor(conn)
    cursor.execute("SAVEPOINT pausepoint_call")
    try:
        yield
    except BaseException:
        # Not when SQLite undid the whole transaction (a full disk): the savepoint went
        # with it, and the batch is undone (``_run_in_batch``).
        if cursor.connection.in_transaction:
            cursor.execute("ROLLBACK TO pausepoint_call")
            cursor.execute("RELEASE pausepoint_call")
        raise
    cursor.execute("RELEASE pausepoint_call")
