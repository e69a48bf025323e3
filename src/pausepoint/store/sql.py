"""The SQL store: SQLAlchemy Core on SQLite (WAL) or PostgreSQL (asyncpg).

The statements are written once, as synchronous functions; only how a call
runs them differs:

- SQLite: all statements run on one dedicated thread with one connection, so a
  checkpoint costs one thread hop for a whole batch, never one per statement.
  Write transactions use ``BEGIN IMMEDIATE`` so that two processes sharing a
  database file serialise their writes instead of failing on upgrade.
- PostgreSQL: each call borrows a connection from an async pool and runs the
  same function in a greenlet over asyncpg, so calls run concurrently, here and
  in other processes. Writes that SQLite serialises therefore lock the
  execution's row first (``SELECT … FOR UPDATE``, or an ``UPDATE`` that is
  itself the lock) or use ``ON CONFLICT``; the default READ COMMITTED isolation
  lets each later statement see what the lock holder committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from pausepoint.errors import InvalidInput, NotFound
from pausepoint.store import schema, wal
from pausepoint.store.access import AccessStore
from pausepoint.store.checkpoints import CheckpointStore
from pausepoint.store.dialects import (
    EVENTS_CHANNEL,
    SQLITE,
    WORK_CHANNEL,
    asyncpg_url,
    dialect_of,
    driver_cursor,
    insert,
    is_postgresql,
    json_loader,
    json_text,
    lock_for_migrations,
    notify,
)
from pausepoint.store.records import (
    Checkpoint,
    CommandRecord,
    EventRecord,
    ExecutionRecord,
    FlowRecord,
)
from pausepoint.store.rows import (
    COMMAND_COLUMNS,
    EXECUTION_COLUMNS,
    command_row,
    execution_row,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

R = TypeVar("R")

# Decides, inside the accepting transaction, what command to record.
CommandDecider = Callable[[ExecutionRecord, list[CommandRecord]], dict[str, Any]]

# PostgreSQL: the connection of the call running in this greenlet.
_call_connection: ContextVar[Connection | None] = ContextVar(
    "pausepoint_store_connection", default=None
)

# Connections per process: calls beyond them wait for one (SQLite uses one).
POSTGRES_POOL_SIZE = 8

# SQLite: calls that queue while the database thread is busy run next as one
# transaction (group commit for every kind of write), at most this many at a time.
SQLITE_BATCH_LIMIT = 256

_SELECT_EXECUTION = f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?"
_INSERT_EXECUTION = """
INSERT INTO executions (
    id, org_id, namespace, flow_id, flow_revision, status, state, labels, created_at,
    updated_at, event_seq, lease_owner, lease_expires_at, wake_at, commands_version
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, 0)
ON CONFLICT (id) DO NOTHING
"""
_LATEST_REVISION = """
SELECT revision, deleted FROM flows WHERE org_id = ? AND namespace = ? AND flow_id = ?
ORDER BY revision DESC LIMIT 1
"""


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///"))


def create_store(url: str, *, sqlite_synchronous: str = "NORMAL") -> SqlStore:
    """The store for a database URL, not yet opened.

    ``sqlite:///PATH`` or ``postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE``
    (``postgresql+asyncpg://`` too; ``?host=/dir`` names a unix socket
    directory). Any other URL raises ``InvalidInput`` naming it.
    """
    return SqlStore(url, synchronous=sqlite_synchronous)


class SqlStore(AccessStore, CheckpointStore):
    """Durable storage for flows, executions, task runs, events and commands.

    ``url`` is ``sqlite:///PATH`` or ``postgresql://USER:PASSWORD@HOST/DB``
    (also ``postgresql+asyncpg://``); anything else raises ``InvalidInput``.
    """

    def __init__(self, url: str, *, synchronous: str = "NORMAL") -> None:
        self.dialect = dialect_of(url)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidInput(f"sqlite_synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.url = url
        self.synchronous = synchronous.upper()
        self._loads = json_loader(self.dialect)
        self._executor: ThreadPoolExecutor | None = None
        if self.dialect == SQLITE:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pausepoint-db")
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._pool: AsyncEngine | None = None
        self._listeners: list[AsyncConnection] = []
        # SQLite: calls waiting for the database thread, and whether a batch is there.
        self._queue: list[_QueuedCall] = []
        self._draining = False
        self._batching = False  # on the database thread: inside a batch's transaction
        self._batch_wrote = False  # on the database thread: a call of the batch wrote
        self._wal: wal.WalCheckpointer | None = None  # SQLite files: checkpoints the WAL

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Connect and bring the schema to the newest migration."""
        if self.dialect == SQLITE:
            await self._call(self._open)
            return
        # Imported here: SQLite users (and every CLI start) need not load asyncio support.
        from sqlalchemy.ext.asyncio import create_async_engine

        self._pool = create_async_engine(
            asyncpg_url(self.url), pool_size=POSTGRES_POOL_SIZE, max_overflow=0
        )
        await self._call(self._migrate)

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
        self._migrate()
        if path is not None and str(path) != ":memory:":
            self._wal = wal.WalCheckpointer(path, synchronous)
            self._wal.start()

    def _migrate(self) -> None:
        from pausepoint.store.migrate import upgrade

        with self._write() as conn:
            lock_for_migrations(conn)
            upgrade(conn)

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
        if self._executor is not None:
            if self._engine is not None:
                # Alone, after the batch in progress (the thread runs one job at a time).
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._close)
            self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._wal is not None:
            self._wal.stop()
            self._wal = None
        if self._conn is not None:
            self._conn.close()
        if self._engine is not None:
            self._engine.dispose()
        self._conn = None
        self._engine = None

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        if self._pool is not None:
            async with self._pool.connect() as conn:
                return await conn.run_sync(_run_on, fn, *args)
        if self._executor is None:
            raise RuntimeError("the store is not open")
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

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
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
        """On the database thread, after a write transaction committed."""
        if self._wal is not None:
            self._wal.written()  # reads leave the log as it was: nothing to copy

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        conn = self._connection()
        if self._batching:  # inside a batch's transaction already
            yield conn
            return
        conn.info["write"] = False
        if self._pool is not None:
            # PostgreSQL: reads run without BEGIN/COMMIT (two round trips saved), so each
            # statement of a read sees its own snapshot. The pool resets the connection
            # when the call returns it.
            conn.execution_options(isolation_level="AUTOCOMMIT")
        with conn.begin():
            yield conn

    def _connection(self) -> Connection:
        conn = _call_connection.get() or self._conn
        if conn is None:
            raise RuntimeError("the store is not open")
        return conn

    async def listen(
        self,
        on_work: Callable[[str], None],
        *,
        on_events: Callable[[str], None] | None = None,
    ) -> bool:
        """Call ``on_work(execution_id)`` (in the loop) whenever any process accepts a
        command for an execution or leaves one for others to run, and
        ``on_events(execution_id)`` whenever any process commits new events.

        Returns False when the database cannot notify (SQLite): then such
        changes are found only by polling. A lost listening connection is not
        re-established; polling still finds the work.
        """
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

    # -- flows -----------------------------------------------------------------

    async def put_flow(
        self, org_id: str, namespace: str, flow_id: str, source: str, now: float
    ) -> FlowRecord:
        """Store a new revision, or return the latest one if the source is unchanged.

        Concurrent writers of one flow (several servers on PostgreSQL) each get
        their own revision: the one that loses the insert race reads again.
        """
        return await self._call(self._put_flow, org_id, namespace, flow_id, source, now)

    def _put_flow(
        self, org_id: str, namespace: str, flow_id: str, source: str, now: float
    ) -> FlowRecord:
        with self._write() as conn:
            while True:
                latest = self._latest_flow_row(conn, org_id, namespace, flow_id)
                if latest is not None and latest.source == source and not latest.deleted:
                    return _flow(latest)
                revision = (latest.revision if latest else 0) + 1
                inserted = conn.execute(
                    insert(conn, schema.flows)
                    .values(
                        org_id=org_id,
                        namespace=namespace,
                        flow_id=flow_id,
                        revision=revision,
                        source=source,
                        created_at=now,
                        deleted=False,
                    )
                    .on_conflict_do_nothing()
                )
                if inserted.rowcount:
                    return FlowRecord(org_id, namespace, flow_id, revision, source, now)

    async def get_flow(
        self, org_id: str, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord | None:
        return await self._call(self._get_flow, org_id, namespace, flow_id, revision)

    def _get_flow(
        self, org_id: str, namespace: str, flow_id: str, revision: int | None
    ) -> FlowRecord | None:
        with self._read() as conn:
            if revision is None:
                return self._latest_flow(conn, org_id, namespace, flow_id)
            t = schema.flows
            row = conn.execute(
                sa.select(t).where(
                    t.c.org_id == org_id,
                    t.c.namespace == namespace,
                    t.c.flow_id == flow_id,
                    t.c.revision == revision,
                )
            ).first()
            return _flow(row) if row else None

    def _latest_flow(
        self, conn: Connection, org_id: str, namespace: str, flow_id: str
    ) -> FlowRecord | None:
        row = self._latest_flow_row(conn, org_id, namespace, flow_id)
        return None if row is None or row.deleted else _flow(row)

    def _latest_flow_row(self, conn: Connection, org_id: str, namespace: str, flow_id: str) -> Any:
        """The newest revision's row, deleted or not (None if the flow never existed)."""
        t = schema.flows
        query = (
            sa.select(t)
            .where(t.c.org_id == org_id, t.c.namespace == namespace, t.c.flow_id == flow_id)
            .order_by(t.c.revision.desc())
            .limit(1)
        )
        return conn.execute(query).first()

    async def latest_revision(self, org_id: str, namespace: str, flow_id: str) -> int | None:
        """The newest revision's number (None if the flow does not exist or was deleted)."""
        return await self._call(self._latest_revision, org_id, namespace, flow_id)

    def _latest_revision(self, org_id: str, namespace: str, flow_id: str) -> int | None:
        with self._read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(_LATEST_REVISION, (org_id, namespace, flow_id))
            row = cursor.fetchone()
        return None if row is None or row[1] else int(row[0])

    async def list_flows(self, org_id: str) -> list[FlowRecord]:
        return await self._call(self._list_flows, org_id)

    def _list_flows(self, org_id: str) -> list[FlowRecord]:
        t = schema.flows
        latest = (
            sa.select(t.c.namespace, t.c.flow_id, sa.func.max(t.c.revision).label("revision"))
            .where(t.c.org_id == org_id)
            .group_by(t.c.namespace, t.c.flow_id)
            .subquery()
        )
        query = (
            sa.select(t)
            .join(
                latest,
                sa.and_(
                    t.c.namespace == latest.c.namespace,
                    t.c.flow_id == latest.c.flow_id,
                    t.c.revision == latest.c.revision,
                ),
            )
            .where(t.c.org_id == org_id, t.c.deleted.is_(False))
            .order_by(t.c.namespace, t.c.flow_id)
        )
        with self._read() as conn:
            return [_flow(row) for row in conn.execute(query)]

    async def delete_flow(self, org_id: str, namespace: str, flow_id: str) -> bool:
        return await self._call(self._delete_flow, org_id, namespace, flow_id)

    def _delete_flow(self, org_id: str, namespace: str, flow_id: str) -> bool:
        t = schema.flows
        with self._write() as conn:
            result = conn.execute(
                t.update()
                .where(
                    t.c.org_id == org_id,
                    t.c.namespace == namespace,
                    t.c.flow_id == flow_id,
                    t.c.deleted.is_(False),
                )
                .values(deleted=True)
            )
            return bool(result.rowcount)

    # -- executions --------------------------------------------------------------

    async def create_execution(self, record: ExecutionRecord, checkpoint: Checkpoint) -> bool:
        """Store a new execution; False (and nothing written) if its id exists already."""
        return await self._call(self._create_execution, record, checkpoint)

    def _create_execution(self, record: ExecutionRecord, checkpoint: Checkpoint) -> bool:
        with self._write() as conn:
            # Plain SQL: starting executions is a hot path (see _write_checkpoint).
            cursor = driver_cursor(conn)
            cursor.execute(
                _INSERT_EXECUTION,
                (
                    record.id,
                    record.org_id,
                    record.namespace,
                    record.flow_id,
                    record.flow_revision,
                    record.status,
                    json_text(record.state),
                    json_text(record.labels),
                    record.created_at,
                    record.updated_at,
                    record.lease_owner,
                    record.lease_expires_at,
                    None if record.lease_owner else record.created_at,
                ),
            )
            if not cursor.rowcount:
                return False
            if checkpoint.events:
                self._write_checkpoint(conn, checkpoint)
            if record.lease_owner is None:
                notify(conn, WORK_CHANNEL, [record.id])
            return True

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        return await self._call(self._get_execution, execution_id)

    def _get_execution(self, execution_id: str) -> ExecutionRecord | None:
        with self._read() as conn:
            return self._execution(conn, execution_id)

    def _execution(
        self, conn: Connection, execution_id: str, *, lock: bool = False
    ) -> ExecutionRecord | None:
        """The execution's row; with ``lock``, held until the transaction ends.

        SQLite needs no row lock: its write transactions are serialised already.
        """
        cursor = driver_cursor(conn)
        sql = _SELECT_EXECUTION
        if lock and is_postgresql(conn):
            sql += " FOR UPDATE"
        cursor.execute(sql, (execution_id,))
        row = cursor.fetchone()
        return execution_row(row, self._loads) if row else None

    async def list_executions(
        self,
        org_id: str,
        *,
        statuses: Sequence[str] = (),
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRecord]:
        """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
        return await self._call(
            self._list_executions, org_id, statuses, namespace, flow_id, labels, limit, before
        )

    def _list_executions(
        self,
        org_id: str,
        statuses: Sequence[str],
        namespace: str | None,
        flow_id: str | None,
        labels: dict[str, str] | None,
        limit: int,
        before: tuple[float, str] | None,
    ) -> list[ExecutionRecord]:
        t = schema.executions
        query = sa.select(t).where(t.c.org_id == org_id)
        if statuses:
            query = query.where(t.c.status.in_(list(statuses)))
        if namespace:
            query = query.where(t.c.namespace == namespace)
        if flow_id:
            query = query.where(t.c.flow_id == flow_id)
        for key, value in (labels or {}).items():
            query = query.where(t.c.labels[key].as_string() == value)
        if before is not None:
            created, last_id = before
            query = query.where(
                sa.or_(
                    t.c.created_at < created, sa.and_(t.c.created_at == created, t.c.id < last_id)
                )
            )
        query = query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [_execution(row) for row in conn.execute(query)]

    async def count_executions_by_state(self) -> dict[str, int]:
        """Executions per state, across all organizations (for metrics)."""
        return await self._call(self._count_executions_by_state)

    def _count_executions_by_state(self) -> dict[str, int]:
        t = schema.executions
        with self._read() as conn:
            rows = conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))
            return {status: int(n) for status, n in rows}

    async def load_task_runs(self, execution_id: str) -> list[dict[str, Any]]:
        return await self._call(self._load_task_runs, execution_id)

    def _load_task_runs(self, execution_id: str) -> list[dict[str, Any]]:
        t = schema.task_runs
        with self._read() as conn:
            rows = conn.execute(sa.select(t.c.data).where(t.c.execution_id == execution_id))
            return [row.data for row in rows]

    async def read_events(
        self, execution_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        return await self._call(self._read_events, execution_id, after, limit)

    def _read_events(self, execution_id: str, after: int, limit: int) -> list[EventRecord]:
        t = schema.events
        query = (
            sa.select(t)
            .where(t.c.execution_id == execution_id, t.c.seq > after)
            .order_by(t.c.seq)
            .limit(limit)
        )
        with self._read() as conn:
            return [
                EventRecord(row.execution_id, row.seq, row.type, row.at, row.data)
                for row in conn.execute(query)
            ]

    # -- commands ----------------------------------------------------------------

    async def accept_command(
        self,
        execution_id: str,
        idempotency_key: str | None,
        decide: CommandDecider,
        now: float,
        *,
        org_id: str | None = None,
    ) -> tuple[CommandRecord, bool, int]:
        """Record a command durably; return it, whether it replays an earlier request, and
        the execution's commands version after it (so the runner can settle its wake-up).

        ``decide`` runs inside the write transaction with the execution and its
        pending commands, so admission and recording are atomic.
        """
        return await self._call(
            self._accept_command, execution_id, idempotency_key, decide, now, org_id
        )

    def _accept_command(
        self,
        execution_id: str,
        idempotency_key: str | None,
        decide: CommandDecider,
        now: float,
        org_id: str | None,
    ) -> tuple[CommandRecord, bool, int]:
        with self._write() as conn:
            execution = self._execution(conn, execution_id, lock=True)
            if execution is None or (org_id is not None and execution.org_id != org_id):
                raise NotFound(f"execution {execution_id} not found")
            cursor = driver_cursor(conn)
            if idempotency_key is not None:
                cursor.execute(
                    f"SELECT {COMMAND_COLUMNS} FROM commands "
                    "WHERE execution_id = ? AND idempotency_key = ?",
                    (execution_id, idempotency_key),
                )
                row = cursor.fetchone()
                if row is not None:
                    return command_row(row, self._loads), True, execution.commands_version
            pending = self._pending(conn, execution_id)
            values = decide(execution, pending)
            cursor.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM commands WHERE execution_id = ?",
                (execution_id,),
            )
            seq = cursor.fetchone()[0]
            record = CommandRecord(
                id=values["id"],
                execution_id=execution_id,
                seq=seq,
                kind=values["kind"],
                payload=values["payload"],
                actor=values["actor"],
                reason=values.get("reason"),
                idempotency_key=idempotency_key,
                request_id=values.get("request_id"),
                status="pending",
                message=None,
                state_before=execution.status,
                state_after=None,
                created_at=now,
                applied_at=None,
            )
            cursor.execute(
                f"INSERT INTO commands ({COMMAND_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    execution_id,
                    seq,
                    record.kind,
                    json_text(record.payload),
                    record.actor,
                    record.reason,
                    idempotency_key,
                    record.request_id,
                    "pending",
                    None,
                    execution.status,
                    None,
                    now,
                    None,
                ),
            )
            cursor.execute(
                "UPDATE executions SET "
                "wake_at = CASE WHEN wake_at IS NULL OR wake_at > ? THEN ? ELSE wake_at END, "
                "commands_version = commands_version + 1 WHERE id = ? "
                "RETURNING commands_version",
                (now, now, execution_id),
            )
            version = int(cursor.fetchone()[0])
            notify(conn, WORK_CHANNEL, [execution_id])
            return record, False, version

    def _pending(self, conn: Connection, execution_id: str) -> list[CommandRecord]:
        cursor = driver_cursor(conn)
        cursor.execute(
            f"SELECT {COMMAND_COLUMNS} FROM commands "
            "WHERE execution_id = ? AND status = 'pending' ORDER BY seq",
            (execution_id,),
        )
        return [command_row(row, self._loads) for row in cursor.fetchall()]

    async def pending_commands(self, execution_id: str) -> tuple[list[CommandRecord], int]:
        """Unapplied commands in acceptance order, and the commands version they reflect."""
        return await self._call(self._pending_commands, execution_id)

    def _pending_commands(self, execution_id: str) -> tuple[list[CommandRecord], int]:
        e = schema.executions
        with self._read() as conn:
            version = conn.execute(
                sa.select(e.c.commands_version).where(e.c.id == execution_id)
            ).scalar_one()
            return self._pending(conn, execution_id), version

    async def get_command(self, command_id: str) -> CommandRecord | None:
        return await self._call(self._get_command, command_id)

    def _get_command(self, command_id: str) -> CommandRecord | None:
        with self._read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(f"SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?", (command_id,))
            row = cursor.fetchone()
            return command_row(row, self._loads) if row else None

    async def list_commands(self, execution_id: str) -> list[CommandRecord]:
        return await self._call(self._list_commands, execution_id)

    def _list_commands(self, execution_id: str) -> list[CommandRecord]:
        c = schema.commands
        with self._read() as conn:
            rows = conn.execute(
                sa.select(c).where(c.c.execution_id == execution_id).order_by(c.c.seq)
            )
            return [_command(row) for row in rows]


def _listener(callback: Callable[[str], None]) -> Callable[[Any, int, str, str], None]:
    """An asyncpg notification listener that hands ``callback`` the execution id."""

    def notified(_conn: Any, _pid: int, _channel: str, execution_id: str) -> None:
        callback(execution_id)

    return notified


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


def _run_on(conn: Connection, fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn`` (inside ``AsyncConnection.run_sync``) with ``conn`` as the call's connection."""
    token = _call_connection.set(conn)
    try:
        return fn(*args)
    finally:
        _call_connection.reset(token)


def _flow(row: Any) -> FlowRecord:
    return FlowRecord(
        row.org_id, row.namespace, row.flow_id, row.revision, row.source, row.created_at
    )


def _execution(row: Any) -> ExecutionRecord:
    return ExecutionRecord(
        id=row.id,
        org_id=row.org_id,
        namespace=row.namespace,
        flow_id=row.flow_id,
        flow_revision=row.flow_revision,
        status=row.status,
        state=row.state,
        labels=row.labels,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        event_seq=row.event_seq,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        commands_version=row.commands_version,
    )


def _command(row: Any) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        execution_id=row.execution_id,
        seq=row.seq,
        kind=row.kind,
        payload=row.payload,
        actor=row.actor,
        reason=row.reason,
        idempotency_key=row.idempotency_key,
        request_id=row.request_id,
        status=row.status,
        message=row.message,
        state_before=row.state_before,
        state_after=row.state_after,
        created_at=row.created_at,
        applied_at=row.applied_at,
    )
