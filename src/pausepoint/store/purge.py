"""Purging ended executions: what retention asks of the store.

An execution is purged with everything that exists only for it: its events,
task runs, commands, the links of the subflow tree it is part of, the files its
task runs stored and the HTTP idempotency records that answer for it. The
statements are written once for SQLite and PostgreSQL.

Only ended executions go, and only when nothing still needs them: a parent
whose child still runs stays (the child reports its end to it), and so does a
child whose end its waiting parent has not yet accepted. The work goes a batch
of executions at a time, each batch its own short transaction, so a purge of a
large database never holds the writer long: checkpoints commit between batches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pausepoint.store import schema
from pausepoint.store.checkpoints import TERMINAL
from pausepoint.store.database import Database

_FILES = "kestra:///"


@dataclass(frozen=True)
class PurgeScope:
    """Which ended executions a purge removes.

    ``org_id`` None means every organization; ``namespace`` is a prefix (the
    namespace and those below it). An execution goes when it ended before
    ``ended_before``; one with control commands (its audit trail) only when it
    also ended before ``audit_before``, so its audit stays readable through the
    same API, with the same tenancy check, for as long as the audit retention
    says. ``excluded`` are the (organization, namespace or None) pairs a more
    specific retention setting governs: this scope leaves them alone.
    """

    ended_before: float
    org_id: str | None = None
    namespace: str | None = None
    audit_before: float | None = None
    excluded: tuple[tuple[str, str | None], ...] = ()


@dataclass
class PurgeCounts:
    """Rows a purge deleted (or, dry, would delete), per table."""

    executions: int = 0
    events: int = 0
    task_runs: int = 0
    commands: int = 0
    idempotency: int = 0
    links: int = 0
    files: int = 0

    def add(self, other: PurgeCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _in_namespace(column: Any, namespace: str) -> Any:
    return sa.or_(column == namespace, column.startswith(namespace + ".", autoescape=True))


def _files_prefix(namespace: str, flow_id: str, execution_id: str) -> str:
    """Where an execution's task runs store their files (see ``pausepoint.storage``)."""
    return f"{_FILES}{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}/"


class Purges:
    """Statements that remove ended executions, run through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _candidates(self, scope: PurgeScope, after: tuple[float, str] | None, limit: int) -> Any:
        x, links, cmd = schema.executions, schema.execution_links, schema.commands
        child = x.alias("child")
        conditions: list[Any] = [
            x.c.status.in_(TERMINAL),
            x.c.ended_at.is_not(None),
            x.c.ended_at < scope.ended_before,
            # A parent stays while a child of it still runs: the child reports its end to it.
            ~sa.exists(
                sa.select(links.c.child_id)
                .join(child, child.c.id == links.c.child_id)
                .where(links.c.parent_id == x.c.id, child.c.status.not_in(TERMINAL))
            ),
            # A child stays until its waiting parent has accepted its end.
            ~sa.exists(
                sa.select(links.c.child_id).where(
                    links.c.child_id == x.c.id,
                    links.c.waits == sa.true(),
                    links.c.notified_at.is_(None),
                )
            ),
        ]
        if after is not None:
            key = sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
            conditions.append(sa.tuple_(x.c.ended_at, x.c.id) > key)
        if scope.org_id is not None:
            conditions.append(x.c.org_id == scope.org_id)
        if scope.namespace is not None:
            conditions.append(_in_namespace(x.c.namespace, scope.namespace))
        for org_id, namespace in scope.excluded:
            kept = x.c.org_id == org_id
            if namespace is not None:
                kept = sa.and_(kept, _in_namespace(x.c.namespace, namespace))
            conditions.append(~kept)
        if scope.audit_before is not None:
            conditions.append(
                sa.or_(
                    x.c.ended_at < scope.audit_before,
                    ~sa.exists(sa.select(cmd.c.id).where(cmd.c.execution_id == x.c.id)),
                )
            )
        return (
            sa.select(x.c.id, x.c.org_id, x.c.namespace, x.c.flow_id, x.c.ended_at)
            .where(*conditions)
            .order_by(x.c.ended_at, x.c.id)
            .limit(limit)
        )

    def purge_batch(
        self, scope: PurgeScope, after: tuple[float, str] | None, limit: int, dry_run: bool
    ) -> tuple[PurgeCounts, tuple[float, str] | None]:
        """Purge (or count, when ``dry_run``) up to ``limit`` executions ``scope`` selects
        after ``after`` (an ``(ended_at, id)`` key, in key order; None: from the first) in
        one transaction. What went, and where the next batch starts (None: no more)."""
        with self._db.write() as conn:
            rows = list(conn.execute(self._candidates(scope, after, limit)).all())
            if not rows:
                return PurgeCounts(), None
            counts = self._delete(conn, rows, scope.ended_before, dry_run)
        last = rows[-1]
        return counts, ((last.ended_at, last.id) if len(rows) == limit else None)

    def _delete(
        self, conn: Connection, rows: list[Any], ended_before: float, dry_run: bool
    ) -> PurgeCounts:
        ids = [row.id for row in rows]
        e, tr, cmd = schema.events, schema.task_runs, schema.commands
        links, idem, files = schema.execution_links, schema.idempotency, schema.stored_files
        file_ranges = [
            sa.and_(
                files.c.org_id == row.org_id,
                files.c.uri >= prefix,
                # The next string after every one that starts with ``prefix`` ('/' + 1 = '0').
                files.c.uri < prefix[:-1] + "0",
            )
            for row in rows
            for prefix in [_files_prefix(row.namespace, row.flow_id, row.id)]
        ]
        answered = sa.func.coalesce(
            idem.c.response["execution_id"].as_string(), idem.c.response["id"].as_string()
        )
        targets: list[tuple[str, sa.Table, Any]] = [
            ("events", e, e.c.execution_id.in_(ids)),
            ("task_runs", tr, tr.c.execution_id.in_(ids)),
            ("commands", cmd, cmd.c.execution_id.in_(ids)),
            ("links", links, sa.or_(links.c.child_id.in_(ids), links.c.parent_id.in_(ids))),
            ("files", files, sa.or_(*file_ranges)),
            (
                "idempotency",
                idem,
                sa.and_(
                    idem.c.org_id.in_({row.org_id for row in rows}),
                    idem.c.created_at < ended_before,
                    answered.in_(ids),
                ),
            ),
        ]
        counts = PurgeCounts(executions=len(ids))
        for name, table, where in targets:
            if dry_run:
                found = conn.execute(sa.select(sa.func.count()).select_from(table).where(where))
                setattr(counts, name, int(found.scalar_one()))
            else:
                setattr(counts, name, conn.execute(sa.delete(table).where(where)).rowcount)
        if not dry_run:
            x = schema.executions
            conn.execute(sa.delete(x).where(x.c.id.in_(ids), x.c.status.in_(TERMINAL)))
        return counts
