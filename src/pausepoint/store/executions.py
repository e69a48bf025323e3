"""Executions: creating them, and reading them with their task runs and events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from pausepoint.store import schema
from pausepoint.store.checkpoints import TERMINAL, write_checkpoint
from pausepoint.store.database import Database
from pausepoint.store.dialects import WORK_CHANNEL, driver_cursor, json_text, notify
from pausepoint.store.records import Checkpoint, EventRecord, ExecutionRecord
from pausepoint.store.rows import select_execution, select_task_runs

_INSERT_EXECUTION = """
INSERT INTO executions (
    id, org_id, namespace, flow_id, flow_revision, status, state, labels, created_at,
    updated_at, event_seq, lease_owner, lease_expires_at, wake_at, commands_version
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, 0)
ON CONFLICT (id) DO NOTHING
"""


@dataclass(frozen=True)
class Occupancy:
    """A flow's executions for its concurrency limit: those that count, and the queue."""

    running: int  # not ended and not waiting for a slot
    waiting: list[str]  # held for a slot, oldest first
    # Still running, but held their slot longer than the flow's `duration`: they no longer count.
    expired: list[str] = field(default_factory=list)


class Executions:
    """Statements on ``executions``, ``task_runs`` and ``events``, run by ``SqlStore``
    through :meth:`Database.run` (checkpoints write them: ``store/checkpoints.py``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, record: ExecutionRecord, checkpoint: Checkpoint) -> bool:
        with self._db.write() as conn:
            # Plain SQL: starting executions is a hot path (see write_checkpoint).
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
                write_checkpoint(conn, checkpoint)
            if record.lease_owner is None:
                notify(conn, WORK_CHANNEL, [record.id])
            return True

    def get(self, execution_id: str) -> ExecutionRecord | None:
        with self._db.read() as conn:
            return select_execution(conn, execution_id, self._db.loads)

    def occupancy(
        self, org_id: str, namespace: str, flow_id: str, slot_since: float | None = None
    ) -> Occupancy:
        """How many executions of a flow are running, and which wait for a concurrency slot.

        With ``slot_since``, an execution that took its slot before then (when it
        started, or was created when it has not started yet) holds it no longer:
        it is listed in ``expired`` and does not count.
        """
        t = schema.executions
        mine = sa.and_(
            t.c.org_id == org_id,
            t.c.namespace == namespace,
            t.c.flow_id == flow_id,
            t.c.status.not_in(list(TERMINAL)),
        )
        held_since = sa.func.coalesce(t.c.started_at, t.c.created_at)
        loads = self._db.loads
        expired: list[str] = []
        with self._db.read() as conn:
            counted = mine if slot_since is None else sa.and_(mine, held_since >= slot_since)
            others = conn.execute(
                sa.select(sa.func.count()).where(counted, t.c.status != "QUEUED")
            ).scalar_one()
            if slot_since is not None:
                expired = list(
                    conn.execute(
                        sa.select(t.c.id)
                        .where(mine, t.c.status != "QUEUED", held_since < slot_since)
                        .order_by(held_since, t.c.id)
                    ).scalars()
                )
            queued = conn.execute(
                sa.select(t.c.id, t.c.state, t.c.created_at)
                .where(mine, t.c.status == "QUEUED")
                .order_by(t.c.created_at, t.c.id)
            ).all()
        waiting: list[str] = []
        running = int(others)
        for execution_id, state, created_at in queued:
            state = loads(state) if isinstance(state, str | bytes) else state
            if "admission" in state or "queue" in state.get("pauses", {}):
                waiting.append(execution_id)
            elif slot_since is not None and created_at < slot_since:
                expired.append(execution_id)  # created long ago and never started
            else:
                running += 1  # created, about to start
        return Occupancy(running, waiting, expired)

    def queued_flows(self) -> list[tuple[str, str, str]]:
        t = schema.executions
        query = (
            sa.select(t.c.org_id, t.c.namespace, t.c.flow_id)
            .where(t.c.status == "QUEUED")
            .distinct()
        )
        with self._db.read() as conn:
            return [(row[0], row[1], row[2]) for row in conn.execute(query)]

    def page(
        self,
        org_id: str,
        statuses: Sequence[str],
        namespace: str | None,
        flow_id: str | None,
        labels: dict[str, str] | None,
        limit: int,
        before: tuple[float, str] | None,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> list[ExecutionRecord]:
        t = schema.executions
        query = sa.select(t).where(t.c.org_id == org_id)
        links = schema.execution_links
        if parent_id:
            query = query.where(
                t.c.id.in_(sa.select(links.c.child_id).where(links.c.parent_id == parent_id))
            )
        if root_id:
            query = query.where(
                t.c.id.in_(sa.select(links.c.child_id).where(links.c.root_id == root_id))
            )
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
        with self._db.read() as conn:
            return [_execution(row) for row in conn.execute(query)]

    def count_by_state(self) -> dict[str, int]:
        t = schema.executions
        with self._db.read() as conn:
            rows = conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))
            return {status: int(n) for status, n in rows}

    def task_runs(self, execution_id: str) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            return select_task_runs(conn, execution_id, self._db.loads)

    def events(self, execution_id: str, after: int, limit: int) -> list[EventRecord]:
        t = schema.events
        query = (
            sa.select(t)
            .where(t.c.execution_id == execution_id, t.c.seq > after)
            .order_by(t.c.seq)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [
                EventRecord(row.execution_id, row.seq, row.type, row.at, row.data)
                for row in conn.execute(query)
            ]


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
