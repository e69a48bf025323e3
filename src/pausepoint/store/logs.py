"""Purging log lines: what Kestra's PurgeLogs task asks of the store.

An execution's log lines are kept in its events (``data["logs"]``). Purging
removes matching lines from those events and leaves the events themselves, so
an execution's history keeps every step and its sequence stays gap-free. The
work goes a page of events at a time, each page its own short transaction, so
a purge of a large database never holds the writer long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from pausepoint.store import schema
from pausepoint.store.database import Database

LEVEL_NAMES = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR"}


def level_of(line: dict[str, Any]) -> str:
    name = str(line.get("level") or "INFO").upper()
    return LEVEL_NAMES.get(name, name)


@dataclass(frozen=True)
class LogFilter:
    """Which lines of an organization's executions a purge removes.

    ``namespace`` is a prefix (the namespace and those below it) unless ``flow_id``
    is given, when it is the flow's namespace. ``levels`` None means every level.
    A line is purged when ``start <= at <= end`` (no ``start``: everything up to ``end``).
    """

    org_id: str
    end: float
    start: float | None = None
    namespace: str | None = None
    flow_id: str | None = None
    execution_id: str | None = None
    levels: frozenset[str] | None = None

    def keeps(self, line: dict[str, Any]) -> bool:
        at = line.get("at")
        if not isinstance(at, int | float) or at > self.end:
            return True
        if self.start is not None and at < self.start:
            return True
        return self.levels is not None and level_of(line) not in self.levels


class LogLines:
    """Statements on the log lines inside ``events``, run through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def purge_page(
        self, which: LogFilter, after: tuple[str, int], limit: int
    ) -> tuple[int, tuple[str, int] | None]:
        """Purge the matching lines of up to ``limit`` events after ``after`` (an
        ``(execution_id, seq)`` key, in key order). How many lines went, and where the
        next page starts (None when there is none)."""
        e, x = schema.events, schema.executions
        conditions = [
            x.c.org_id == which.org_id,
            sa.tuple_(e.c.execution_id, e.c.seq) > sa.tuple_(sa.literal(after[0]), after[1]),
        ]
        if which.start is not None:
            conditions.append(e.c.at >= which.start)  # a line is never later than its event
        if which.execution_id is not None:
            conditions.append(e.c.execution_id == which.execution_id)
        if which.flow_id is not None:
            conditions += [x.c.namespace == which.namespace, x.c.flow_id == which.flow_id]
        elif which.namespace is not None:
            conditions.append(
                sa.or_(
                    x.c.namespace == which.namespace,
                    x.c.namespace.startswith(which.namespace + "."),
                )
            )
        query = (
            sa.select(e.c.execution_id, e.c.seq, e.c.data)
            .join(x, x.c.id == e.c.execution_id)
            .where(*conditions)
            .order_by(e.c.execution_id, e.c.seq)
            .limit(limit)
        )
        removed = 0
        last: tuple[str, int] | None = None
        with self._db.write() as conn:
            rows = conn.execute(query).all()
            for row in rows:
                last = (row.execution_id, row.seq)
                lines = row.data.get("logs") if isinstance(row.data, dict) else None
                if not isinstance(lines, list) or not lines:
                    continue
                kept = [line for line in lines if not isinstance(line, dict) or which.keeps(line)]
                if len(kept) == len(lines):
                    continue
                removed += len(lines) - len(kept)
                data = {**row.data, "logs": kept}
                conn.execute(
                    sa.update(e)
                    .where(e.c.execution_id == row.execution_id, e.c.seq == row.seq)
                    .values(data=data)
                )
        return removed, (last if len(rows) == limit else None)
