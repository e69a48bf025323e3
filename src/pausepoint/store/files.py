"""Internal storage: files by URI, each organization's own, in the same database.

Keeping them beside the executions makes a write as durable as a checkpoint
and lets every process of a deployment (embedded or Temporal workers) read
what another wrote. Writing a URI again replaces its content: the URIs a task
writes name its task run, so a retried attempt overwrites its own files.
"""

from __future__ import annotations

import sqlalchemy as sa

from pausepoint.store import schema
from pausepoint.store.database import Database
from pausepoint.store.dialects import insert


class Files:
    """Statements on ``stored_files``, run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, org_id: str, uri: str, content: bytes, now: float) -> None:
        t = schema.stored_files
        with self._db.write() as conn:
            upsert = insert(conn, t).values(
                org_id=org_id, uri=uri, content=content, size=len(content), created_at=now
            )
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[t.c.org_id, t.c.uri],
                    set_={
                        "content": upsert.excluded.content,
                        "size": upsert.excluded.size,
                        "created_at": upsert.excluded.created_at,
                    },
                )
            )

    def get(self, org_id: str, uri: str) -> bytes | None:
        t = schema.stored_files
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(t.c.content).where(t.c.org_id == org_id, t.c.uri == uri)
            ).first()
        return None if row is None else bytes(row.content)
