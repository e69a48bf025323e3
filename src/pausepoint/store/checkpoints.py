"""Storage for runtimes: checkpoints (group commit), leases, claims and wake-ups.

A mixin of :class:`pausepoint.store.sql.SqlStore`: the same connection, thread
and transactions.

Every write here is either a conditional ``UPDATE`` of the execution's row
(the lease check) or runs after one, so on PostgreSQL the row lock orders it
against commands accepted concurrently (which lock the same row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pausepoint.store import schema
from pausepoint.store.dialects import (
    EVENTS_CHANNEL,
    WORK_CHANNEL,
    driver_cursor,
    is_postgresql,
    json_text,
    lock_leases_of,
    notify,
)
from pausepoint.store.records import Checkpoint, CommandRecord, EventRecord, ExecutionRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

R = TypeVar("R")
TERMINAL = ("COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT")

_UPDATE_EXECUTION = """
UPDATE executions SET
    status = ?, state = ?, updated_at = ?, started_at = ?, ended_at = ?, event_seq = ?,
    lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END,
    wake_at = CASE WHEN ? AND commands_version = ? THEN ? ELSE wake_at END
WHERE id = ? AND lease_owner = ?
"""
_NOT_ENDED = "status NOT IN ({})".format(", ".join(f"'{status}'" for status in sorted(TERMINAL)))
# Someone should look at these now: a timer fell due or a command arrived (ix_executions_wake).
_DUE = f"""
SELECT id, lease_owner FROM executions
WHERE wake_at <= ? AND {_NOT_ENDED}
  AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)
LIMIT ?
"""
# Their process died: the lease ran out (ix_executions_lease; only running ones hold one).
_ORPHANED = f"""
SELECT id, lease_owner FROM executions
WHERE lease_owner > '' AND lease_owner != ? AND lease_expires_at < ? AND {_NOT_ENDED}
LIMIT ?
"""
_TAKE_LEASE = f"""
UPDATE executions SET lease_owner = ?, lease_expires_at = ?, wake_at = NULL
WHERE id = ? AND {_NOT_ENDED}
  AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)
"""
_TASK_RUNS = "SELECT data FROM task_runs WHERE execution_id = ?"
# A command accepted after the runtime last looked keeps wake_at set, so its wake-up is not lost.
_UPSERT_TASK_RUN = """
INSERT INTO task_runs (execution_id, id, task_id, state, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (execution_id, id) DO UPDATE SET state = excluded.state, data = excluded.data
"""
_PENDING_COMMANDS = (
    "SELECT id, kind FROM commands WHERE execution_id = ? AND status = 'pending' ORDER BY seq"
)
_INSERT_EVENT = "INSERT INTO events (execution_id, seq, type, at, data) VALUES (?, ?, ?, ?, ?)"
_APPLY_COMMAND = """
UPDATE commands SET status = ?, message = ?, state_after = ?, applied_at = ?
WHERE id = ? AND status = 'pending'
"""


@dataclass(frozen=True)
class Loaded:
    """What a runtime reads when it takes an execution on."""

    record: ExecutionRecord
    task_runs: list[dict[str, Any]] | None  # None: the caller's cached copy is current
    pending: list[CommandRecord]
    commands_version: int


class CheckpointStore:
    """What runtimes write and claim."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., R], *args: Any) -> R: ...
        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _execution(
            self, conn: Connection, execution_id: str, *, lock: bool = False
        ) -> ExecutionRecord | None: ...
        def _pending(self, conn: Connection, execution_id: str) -> list[CommandRecord]: ...

        _loads: Callable[[Any], Any]

    # -- runtime: checkpoints and leases -------------------------------------------

    async def checkpoint(self, batch: Sequence[Checkpoint]) -> list[bool]:
        """Commit many executions' checkpoints in one transaction (group commit).

        Returns, per checkpoint, whether it was written; ``False`` means the
        writer no longer holds the execution's lease.
        """
        return await self._call(self._checkpoint, batch)

    def _checkpoint(self, batch: Sequence[Checkpoint]) -> list[bool]:
        with self._write() as conn:
            if not is_postgresql(conn):  # one writer at a time: nothing to order or announce
                return [self._write_checkpoint(conn, item) for item in batch]
            # Concurrent transactions lock rows: taking them in id order, as lease
            # renewals do, means two writers never deadlock.
            written = [False] * len(batch)
            for n in sorted(range(len(batch)), key=lambda n: batch[n].execution_id):
                written[n] = self._write_checkpoint(conn, batch[n])
            notify(
                conn,
                EVENTS_CHANNEL,
                [item.execution_id for item, ok in zip(batch, written, strict=True) if ok],
            )
            return written

    def _write_checkpoint(self, conn: Connection, item: Checkpoint) -> bool:
        # The hot path: plain SQL through the driver. Building Core constructs
        # for every checkpoint cost several times more than SQLite itself.
        cursor = driver_cursor(conn)
        release = bool(item.release)
        settle_wake = item.commands_version_seen is not None
        cursor.execute(
            _UPDATE_EXECUTION,
            (
                item.status,
                json_text(item.state),
                item.updated_at,
                item.started_at,
                item.ended_at,
                item.event_seq,
                release,
                release,
                settle_wake,
                item.commands_version_seen,
                item.wake_at,
                item.execution_id,
                item.owner,
            ),
        )
        if cursor.rowcount == 0:
            return False
        if item.status in TERMINAL:
            self._reject_leftover_commands(cursor, item)
        if item.task_runs:
            cursor.executemany(
                _UPSERT_TASK_RUN,
                [
                    (item.execution_id, run["id"], run["task_id"], run["state"], json_text(run))
                    for run in item.task_runs
                ],
            )
        if item.events:
            cursor.executemany(
                _INSERT_EVENT,
                [
                    (ev.execution_id, ev.seq, ev.type, ev.at, json_text(ev.data))
                    for ev in item.events
                ],
            )
        if item.command_results:
            cursor.executemany(
                _APPLY_COMMAND,
                [
                    (
                        "applied" if applied else "rejected",
                        message,
                        state_after,
                        item.updated_at,
                        cid,
                    )
                    for cid, applied, message, state_after in item.command_results
                ],
            )
        return True

    def _reject_leftover_commands(self, cursor: Any, item: Checkpoint) -> None:
        """Refuse, in the finishing transaction, commands accepted that will never apply.

        A command accepted while the execution was still running can lose the
        race against its last step. Accepting takes the same lock (SQLite's write
        lock, the execution's row on PostgreSQL), so every such command is visible
        here; its ``command.rejected`` event goes before the terminal event, which
        stays the last one.
        """
        decided = {result[0] for result in item.command_results}
        cursor.execute(_PENDING_COMMANDS, (item.execution_id,))
        leftovers = [(cid, kind) for cid, kind in cursor.fetchall() if cid not in decided]
        if not leftovers:
            return
        state = item.status.lower().replace("_", " ")
        results = []
        events = []
        for cid, kind in leftovers:
            message = (
                f"cannot {kind} {state} execution {item.execution_id}: it finished before "
                f"the command was applied"
            )
            results.append((cid, False, message, item.status))
            events.append(
                EventRecord(
                    item.execution_id,
                    0,
                    "command.rejected",
                    item.updated_at,
                    {"command_id": cid, "kind": kind, "message": message},
                )
            )
        if item.events:
            *body, last = item.events
            ordered = [*body, *events, last]
        else:
            ordered = events
        first_seq = item.event_seq - len(item.events) + 1
        item.events = [
            EventRecord(ev.execution_id, first_seq + n, ev.type, ev.at, ev.data)
            for n, ev in enumerate(ordered)
        ]
        item.event_seq = first_seq + len(item.events) - 1
        item.command_results = [*item.command_results, *results]
        cursor.execute(
            "UPDATE executions SET event_seq = ? WHERE id = ?", (item.event_seq, item.execution_id)
        )

    async def claim(self, execution_id: str, owner: str, ttl: float, now: float) -> bool:
        """Take the lease if it is free or expired (or already ours)."""
        return await self._call(self._claim, execution_id, owner, ttl, now)

    def _claim(self, execution_id: str, owner: str, ttl: float, now: float) -> bool:
        with self._write() as conn:
            return _take_lease(conn, execution_id, owner, ttl, now)

    async def claim_and_load(
        self, execution_id: str, owner: str, ttl: float, now: float, known_seq: int | None
    ) -> Loaded | None:
        """Claim the lease and read what running the execution needs, in one transaction.

        Task runs are read only when the caller's copy (at event ``known_seq``)
        is stale; ``None`` means the lease is held by a live process.
        """
        return await self._call(self._claim_and_load, execution_id, owner, ttl, now, known_seq)

    def _claim_and_load(
        self, execution_id: str, owner: str, ttl: float, now: float, known_seq: int | None
    ) -> Loaded | None:
        with self._write() as conn:
            if not _take_lease(conn, execution_id, owner, ttl, now):
                return None
            record = self._execution(conn, execution_id)
            assert record is not None
            runs = None
            if known_seq != record.event_seq:
                cursor = driver_cursor(conn)
                cursor.execute(_TASK_RUNS, (execution_id,))
                runs = [self._loads(row[0]) for row in cursor.fetchall()]
            return Loaded(record, runs, self._pending(conn, execution_id), record.commands_version)

    async def find_work(self, owner: str, now: float, limit: int = 100) -> list[tuple[str, bool]]:
        """Executions someone should look at now: (id, already ours)."""
        return await self._call(self._find_work, owner, now, limit)

    def _find_work(self, owner: str, now: float, limit: int) -> list[tuple[str, bool]]:
        # Two index searches, never a scan: a database holding a million finished
        # executions costs a poll no more than an empty one.
        with self._read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(_DUE, (now, owner, now, limit))
            found = {row[0]: row[1] == owner for row in cursor.fetchall()}
            cursor.execute(_ORPHANED, (owner, now, limit))
            found.update((row[0], False) for row in cursor.fetchall())
        return list(found.items())[:limit]

    async def settle_wake(self, execution_id: str, owner: str, commands_version: int) -> None:
        """Clear ``wake_at`` of an execution we run, unless a newer command arrived."""
        await self._call(self._settle_wake, execution_id, owner, commands_version)

    def _settle_wake(self, execution_id: str, owner: str, commands_version: int) -> None:
        e = schema.executions
        with self._write() as conn:
            conn.execute(
                e.update()
                .where(
                    e.c.id == execution_id,
                    e.c.lease_owner == owner,
                    e.c.commands_version == commands_version,
                )
                .values(wake_at=None)
            )

    async def renew_leases(self, owner: str, ttl: float, now: float) -> None:
        await self._call(self._renew_leases, owner, ttl, now)

    def _renew_leases(self, owner: str, ttl: float, now: float) -> None:
        e = schema.executions
        with self._write() as conn:
            lock_leases_of(conn, owner)
            conn.execute(
                e.update().where(e.c.lease_owner == owner).values(lease_expires_at=now + ttl)
            )

    async def release_leases(self, owner: str, wake_at: float) -> None:
        """Let go of everything ``owner`` holds (graceful shutdown): others may take over now."""
        await self._call(self._release_leases, owner, wake_at)

    def _release_leases(self, owner: str, wake_at: float) -> None:
        e = schema.executions
        with self._write() as conn:
            lock_leases_of(conn, owner)
            released = conn.execute(
                e.update()
                .where(e.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None, wake_at=wake_at)
                .returning(e.c.id)
            )
            notify(conn, WORK_CHANNEL, released.scalars().all())


def _take_lease(conn: Connection, execution_id: str, owner: str, ttl: float, now: float) -> bool:
    """Take the lease of a live execution if it is free, expired or already ours."""
    cursor = driver_cursor(conn)
    cursor.execute(_TAKE_LEASE, (owner, now + ttl, execution_id, owner, now))
    return bool(cursor.rowcount)
