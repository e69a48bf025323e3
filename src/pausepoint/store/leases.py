"""Leases: which process runs an execution, finding work, and wake-ups.

A runtime holds an execution's lease while it runs it and renews it while
alive; when its process dies the lease runs out and another takes the
execution over. Taking a lease is a conditional ``UPDATE`` of the execution's
row, so on PostgreSQL it is also the row lock that orders it against commands
accepted concurrently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from pausepoint.store import schema
from pausepoint.store.checkpoints import TERMINAL
from pausepoint.store.database import Database
from pausepoint.store.dialects import WORK_CHANNEL, driver_cursor, lock_leases_of, notify
from pausepoint.store.records import CommandRecord, ExecutionRecord
from pausepoint.store.rows import select_execution, select_pending_commands, select_task_runs

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


@dataclass(frozen=True)
class Loaded:
    """What a runtime reads when it takes an execution on."""

    record: ExecutionRecord
    task_runs: list[dict[str, Any]] | None  # None: the caller's cached copy is current
    pending: list[CommandRecord]
    commands_version: int


class Leases:
    """Statements on executions' leases, run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, execution_id: str, owner: str, ttl: float, now: float) -> bool:
        with self._db.write() as conn:
            return _take_lease(conn, execution_id, owner, ttl, now)

    def claim_and_load(
        self, execution_id: str, owner: str, ttl: float, now: float, known_seq: int | None
    ) -> Loaded | None:
        loads = self._db.loads
        with self._db.write() as conn:
            if not _take_lease(conn, execution_id, owner, ttl, now):
                return None
            record = select_execution(conn, execution_id, loads)
            assert record is not None
            runs = None
            if known_seq != record.event_seq:
                runs = select_task_runs(conn, execution_id, loads)
            pending = select_pending_commands(conn, execution_id, loads)
            return Loaded(record, runs, pending, record.commands_version)

    def find_work(self, owner: str, now: float, limit: int) -> list[tuple[str, bool]]:
        # Two index searches, never a scan: a database holding a million finished
        # executions costs a poll no more than an empty one.
        with self._db.read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(_DUE, (now, owner, now, limit))
            found = {row[0]: row[1] == owner for row in cursor.fetchall()}
            cursor.execute(_ORPHANED, (owner, now, limit))
            found.update((row[0], False) for row in cursor.fetchall())
        return list(found.items())[:limit]

    def settle_wake(self, execution_id: str, owner: str, commands_version: int) -> None:
        e = schema.executions
        with self._db.write() as conn:
            conn.execute(
                e.update()
                .where(
                    e.c.id == execution_id,
                    e.c.lease_owner == owner,
                    e.c.commands_version == commands_version,
                )
                .values(wake_at=None)
            )

    def renew(self, owner: str, ttl: float, now: float) -> None:
        e = schema.executions
        with self._db.write() as conn:
            lock_leases_of(conn, owner)
            conn.execute(
                e.update().where(e.c.lease_owner == owner).values(lease_expires_at=now + ttl)
            )

    def release(self, owner: str, wake_at: float) -> None:
        e = schema.executions
        with self._db.write() as conn:
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
