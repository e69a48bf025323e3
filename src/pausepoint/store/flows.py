"""Flows: revisions of each flow's source, and their soft deletion."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pausepoint.store import schema
from pausepoint.store.database import Database
from pausepoint.store.dialects import driver_cursor, insert
from pausepoint.store.records import FlowRecord

_LATEST_REVISION = """
SELECT revision, deleted FROM flows WHERE org_id = ? AND namespace = ? AND flow_id = ?
ORDER BY revision DESC LIMIT 1
"""


class Flows:
    """Statements on ``flows``, run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, org_id: str, namespace: str, flow_id: str, source: str, now: float) -> FlowRecord:
        with self._db.write() as conn:
            while True:  # again only if another writer took the next revision first
                latest = _latest_row(conn, org_id, namespace, flow_id)
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

    def get(
        self, org_id: str, namespace: str, flow_id: str, revision: int | None
    ) -> FlowRecord | None:
        with self._db.read() as conn:
            if revision is None:
                row = _latest_row(conn, org_id, namespace, flow_id)
                return None if row is None or row.deleted else _flow(row)
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

    def latest_revision(self, org_id: str, namespace: str, flow_id: str) -> int | None:
        with self._db.read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(_LATEST_REVISION, (org_id, namespace, flow_id))
            row = cursor.fetchone()
        return None if row is None or row[1] else int(row[0])

    def list_latest(self, org_id: str) -> list[FlowRecord]:
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
        with self._db.read() as conn:
            return [_flow(row) for row in conn.execute(query)]

    def delete(self, org_id: str, namespace: str, flow_id: str) -> bool:
        t = schema.flows
        with self._db.write() as conn:
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


def _latest_row(conn: Connection, org_id: str, namespace: str, flow_id: str) -> Any:
    """The newest revision's row, deleted or not (None if the flow never existed)."""
    t = schema.flows
    query = (
        sa.select(t)
        .where(t.c.org_id == org_id, t.c.namespace == namespace, t.c.flow_id == flow_id)
        .order_by(t.c.revision.desc())
        .limit(1)
    )
    return conn.execute(query).first()


def _flow(row: Any) -> FlowRecord:
    return FlowRecord(
        row.org_id, row.namespace, row.flow_id, row.revision, row.source, row.created_at
    )
