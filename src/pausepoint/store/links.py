"""Execution trees: which task run of which execution started a subflow's execution.

A link is written before its child execution is created, and keyed by the
child's id (which derives from the parent's task run): starting the same
child again finds the same link. ``notified_at`` records that the parent
accepted the child's end, so the end is delivered until it is heard once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from pausepoint.store import schema
from pausepoint.store.checkpoints import TERMINAL
from pausepoint.store.database import Database
from pausepoint.store.dialects import driver_cursor


@dataclass(frozen=True)
class ExecutionLink:
    child_id: str
    org_id: str
    parent_id: str
    parent_task_run_id: str
    root_id: str
    waits: bool  # the parent's task waits for the child's end
    notified_at: float | None
    created_at: float
    cascade_error: str | None = None  # the last command a cascade could not send it


@dataclass(frozen=True)
class ChildRow:
    """A child execution as its parent's tree shows it."""

    link: ExecutionLink
    namespace: str
    flow_id: str
    status: str


def _link(row: sa.Row[tuple[object, ...]]) -> ExecutionLink:
    m = row._mapping
    return ExecutionLink(
        child_id=m["child_id"],
        org_id=m["org_id"],
        parent_id=m["parent_id"],
        parent_task_run_id=m["parent_task_run_id"],
        root_id=m["root_id"],
        waits=bool(m["waits"]),
        notified_at=m["notified_at"],
        created_at=m["created_at"],
        cascade_error=m["cascade_error"],
    )


_LINK_COLUMNS = (
    "child_id, org_id, parent_id, parent_task_run_id, root_id, waits, notified_at, created_at, "
    "cascade_error"
)
_CHILDREN = (
    f"SELECT {', '.join('l.' + c for c in _LINK_COLUMNS.split(', '))}, "
    "e.namespace, e.flow_id, e.status "
    "FROM execution_links l JOIN executions e ON e.id = l.child_id "
    "WHERE l.parent_id = ? ORDER BY l.created_at, l.child_id"
)


def _driver_link(row: tuple[Any, ...]) -> ExecutionLink:
    """A link from a driver row that starts with ``_LINK_COLUMNS``."""
    return ExecutionLink(
        child_id=row[0],
        org_id=row[1],
        parent_id=row[2],
        parent_task_run_id=row[3],
        root_id=row[4],
        waits=bool(row[5]),
        notified_at=row[6],
        created_at=row[7],
        cascade_error=row[8],
    )


class Links:
    """Statements on ``execution_links``, run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, link: ExecutionLink) -> ExecutionLink:
        """Record ``link`` unless its child has one; the link stored either way."""
        t = schema.execution_links
        with self._db.write() as conn:
            row = conn.execute(sa.select(t).where(t.c.child_id == link.child_id)).first()
            if row is not None:
                return _link(row)
            conn.execute(
                t.insert().values(
                    child_id=link.child_id,
                    org_id=link.org_id,
                    parent_id=link.parent_id,
                    parent_task_run_id=link.parent_task_run_id,
                    root_id=link.root_id,
                    waits=link.waits,
                    notified_at=link.notified_at,
                    created_at=link.created_at,
                )
            )
            return link

    # Read for every execution's view (``Engine.wait`` returns one): plain SQL through
    # the driver, as the checkpoint path does.
    def get(self, child_id: str) -> ExecutionLink | None:
        with self._db.read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(
                f"SELECT {_LINK_COLUMNS} FROM execution_links WHERE child_id = ?", (child_id,)
            )
            row = cursor.fetchone()
            return None if row is None else _driver_link(row)

    def children(self, parent_id: str) -> list[ChildRow]:
        """The executions ``parent_id`` started, oldest first (those created so far)."""
        with self._db.read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(_CHILDREN, (parent_id,))
            return [
                ChildRow(_driver_link(row), row[-3], row[-2], row[-1]) for row in cursor.fetchall()
            ]

    def tree(self, root_id: str) -> list[ExecutionLink]:
        """Every link of the tree under ``root_id``."""
        t = schema.execution_links
        with self._db.read() as conn:
            rows = conn.execute(sa.select(t).where(t.c.root_id == root_id))
            return [_link(row) for row in rows]

    def ended_unheard(self, limit: int) -> list[ExecutionLink]:
        """Children that ended and whose waiting parent has not accepted their end yet."""
        t, e = schema.execution_links, schema.executions
        query = (
            sa.select(t)
            .join(e, e.c.id == t.c.child_id)
            .where(t.c.waits == sa.true(), t.c.notified_at.is_(None), e.c.status.in_(TERMINAL))
            .order_by(t.c.created_at)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [_link(row) for row in conn.execute(query)]

    def running_attached(self, limit: int) -> list[ExecutionLink]:
        """Children not ended whose parent waits for them (what control cascades to)."""
        t, e = schema.execution_links, schema.executions
        query = (
            sa.select(t)
            .join(e, e.c.id == t.c.child_id)
            .where(t.c.waits == sa.true(), e.c.status.not_in(TERMINAL))
            .order_by(t.c.created_at)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [_link(row) for row in conn.execute(query)]

    def stopped_under_pausing(self, limit: int) -> list[ExecutionLink]:
        """Children that have stopped (PAUSED, or QUEUED and not started) whose parent
        waits for them and is PAUSING: what the parent's pause waits to hear of."""
        t, e = schema.execution_links, schema.executions
        parent, child = e.alias("parent"), e.alias("child")
        query = (
            sa.select(t)
            .join(parent, parent.c.id == t.c.parent_id)
            .join(child, child.c.id == t.c.child_id)
            .where(
                parent.c.status == "PAUSING",
                t.c.waits == sa.true(),
                t.c.notified_at.is_(None),
                child.c.status.in_(("PAUSED", "QUEUED")),
            )
            .order_by(t.c.created_at)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [_link(row) for row in conn.execute(query)]

    def mark_heard(self, child_id: str, at: float) -> None:
        t = schema.execution_links
        with self._db.write() as conn:
            conn.execute(
                t.update()
                .where(t.c.child_id == child_id, t.c.notified_at.is_(None))
                .values(notified_at=at)
            )

    def note_cascade_error(self, child_id: str, error: str) -> None:
        t = schema.execution_links
        with self._db.write() as conn:
            conn.execute(t.update().where(t.c.child_id == child_id).values(cascade_error=error))

    def detach(self, child_id: str) -> None:
        """The parent no longer waits for the child: nothing cascades to it any more."""
        t = schema.execution_links
        with self._db.write() as conn:
            conn.execute(t.update().where(t.c.child_id == child_id).values(waits=False))
