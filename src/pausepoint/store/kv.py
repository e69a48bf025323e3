"""Kestra's key-value store: each namespace's keys, an organization's own.

Values are kept as JSON text, so a number stays a number and a string a
string when read back. A key may expire: past ``expires_at`` it reads as
absent and may be set again even without ``overwrite``.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from pausepoint.store import schema
from pausepoint.store.database import Database
from pausepoint.store.dialects import insert


class KeyValues:
    """Statements on ``kv_pairs``, run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(
        self,
        org_id: str,
        namespace: str,
        key: str,
        value: Any,
        *,
        overwrite: bool,
        expires_at: float | None,
        description: str | None,
        now: float,
    ) -> bool:
        """Set the key; False (nothing changed) when ``overwrite`` is false and it has a
        value that has not expired."""
        t = schema.kv_pairs
        row = {
            "org_id": org_id,
            "namespace": namespace,
            "key": key,
            "value": json.dumps(value),
            "description": description,
            "expires_at": expires_at,
            "updated_at": now,
        }
        with self._db.write() as conn:
            upsert = insert(conn, t).values(**row)
            changes = {name: upsert.excluded[name] for name in row if name not in t.primary_key}
            # One statement either way, so two writers racing without overwrite cannot both win.
            replaceable = (
                None if overwrite else (t.c.expires_at.is_not(None)) & (t.c.expires_at <= now)
            )
            result = conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[t.c.org_id, t.c.namespace, t.c.key],
                    set_=changes,
                    where=replaceable,
                )
            )
        return bool(result.rowcount)

    def get(self, org_id: str, namespace: str, key: str, now: float) -> tuple[bool, Any]:
        t = schema.kv_pairs
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(t.c.value, t.c.expires_at).where(
                    t.c.org_id == org_id, t.c.namespace == namespace, t.c.key == key
                )
            ).first()
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return False, None
        return True, json.loads(row.value)

    def delete(self, org_id: str, namespace: str, key: str, now: float) -> bool:
        """Remove the key; whether it had a value that had not expired."""
        t = schema.kv_pairs
        with self._db.write() as conn:
            row = conn.execute(
                sa.delete(t)
                .where(t.c.org_id == org_id, t.c.namespace == namespace, t.c.key == key)
                .returning(t.c.expires_at)
            ).first()
        return row is not None and (row.expires_at is None or row.expires_at > now)
