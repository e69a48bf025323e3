"""Storage for access control: API keys, secrets and HTTP idempotency records.

Repositories that ``SqlStore`` composes: each takes the store's :class:`Database`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from pausepoint.store import schema
from pausepoint.store.database import Database
from pausepoint.store.dialects import driver_cursor, insert

ABANDONED_CLAIM_SECONDS = 60.0
"""An unanswered Idempotency-Key reservation this old was left by a process that died."""


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    org_id: str
    role: str
    name: str
    hash: str
    created_at: float
    revoked_at: float | None
    user: str | None = None  # the person the key acts for
    groups: tuple[str, ...] = ()  # that person's groups


@dataclass(frozen=True)
class IdempotencyRecord:
    org_id: str
    key: str
    method: str
    path: str
    body_hash: str
    status_code: int
    response: Any
    created_at: float


class ApiKeys:
    """Statements on ``api_keys``, run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, record: ApiKeyRecord) -> None:
        with self._db.write() as conn:
            conn.execute(
                schema.api_keys.insert().values(
                    id=record.id,
                    org_id=record.org_id,
                    role=record.role,
                    name=record.name,
                    hash=record.hash,
                    created_at=record.created_at,
                    revoked_at=None,
                    user=record.user,
                    groups=_encode_groups(record.groups),
                )
            )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        # Every request authenticates: plain SQL through the driver keeps this cheap.
        # "user" is quoted: unquoted, PostgreSQL reads it as CURRENT_USER.
        with self._db.read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(
                'SELECT id, org_id, role, name, hash, created_at, revoked_at, "user", groups '
                "FROM api_keys WHERE id = ?",
                (key_id,),
            )
            row = cursor.fetchone()
            return _key(row) if row else None

    def list_all(self, org_id: str | None) -> list[ApiKeyRecord]:
        t = schema.api_keys
        query = sa.select(t).order_by(t.c.created_at)
        if org_id is not None:
            query = query.where(t.c.org_id == org_id)
        with self._db.read() as conn:
            return [_key(row) for row in conn.execute(query)]

    def revoke(self, key_id: str, now: float, org_id: str | None) -> bool:
        t = schema.api_keys
        query = t.update().where(t.c.id == key_id, t.c.revoked_at.is_(None))
        if org_id is not None:
            query = query.where(t.c.org_id == org_id)
        with self._db.write() as conn:
            return bool(conn.execute(query.values(revoked_at=now)).rowcount)

    def count(self) -> int:
        with self._db.read() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(schema.api_keys)).scalar_one()
            )


class Secrets:
    """Statements on ``secrets`` (sealed values), run by ``SqlStore`` through
    :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, org_id: str, name: str, sealed: str, now: float) -> None:
        t = schema.secrets
        with self._db.write() as conn:
            upsert = insert(conn, t).values(org_id=org_id, name=name, value=sealed, updated_at=now)
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[t.c.org_id, t.c.name],
                    set_={"value": upsert.excluded.value, "updated_at": upsert.excluded.updated_at},
                )
            )

    def delete(self, org_id: str, name: str) -> bool:
        t = schema.secrets
        with self._db.write() as conn:
            return bool(
                conn.execute(t.delete().where(t.c.org_id == org_id, t.c.name == name)).rowcount
            )

    def sealed(self, org_id: str) -> dict[str, tuple[str, float]]:
        t = schema.secrets
        with self._db.read() as conn:
            rows = conn.execute(sa.select(t).where(t.c.org_id == org_id).order_by(t.c.name))
            return {row.name: (row.value, row.updated_at) for row in rows}


class IdempotencyKeys:
    """Statements on ``idempotency`` (HTTP ``Idempotency-Key`` reservations and their
    answers), run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        t = schema.idempotency
        with self._db.write() as conn:
            while True:  # again only if the holder released the key in between
                reserved = conn.execute(
                    insert(conn, t)
                    .values(
                        org_id=record.org_id,
                        key=record.key,
                        method=record.method,
                        path=record.path,
                        body_hash=record.body_hash,
                        status_code=0,
                        response=None,
                        created_at=record.created_at,
                    )
                    .on_conflict_do_nothing()
                )
                if reserved.rowcount:
                    return None
                row = conn.execute(
                    sa.select(t).where(t.c.org_id == record.org_id, t.c.key == record.key)
                ).first()
                if row is not None and self._abandoned(row, record):
                    taken = conn.execute(
                        t.update()
                        .where(
                            t.c.org_id == record.org_id,
                            t.c.key == record.key,
                            t.c.status_code == 0,
                            t.c.created_at == row.created_at,
                        )
                        .values(created_at=record.created_at)
                    )
                    if taken.rowcount:
                        return None
                    continue  # someone else took it over (or finished it) first
                if row is not None:
                    return IdempotencyRecord(
                        row.org_id,
                        row.key,
                        row.method,
                        row.path,
                        row.body_hash,
                        row.status_code,
                        row.response,
                        row.created_at,
                    )

    @staticmethod
    def _abandoned(row: Any, record: IdempotencyRecord) -> bool:
        """A reservation for this very request whose holder has not answered for
        ``ABANDONED_CLAIM_SECONDS``: its process died (a live holder answers within its
        command wait). The retry takes it over; the command underneath is deduplicated
        by its own idempotency key, so a command the dead process accepted is not
        accepted twice."""
        return bool(
            row.status_code == 0
            and row.body_hash == record.body_hash
            and row.path == record.path
            and row.created_at < record.created_at - ABANDONED_CLAIM_SECONDS
        )

    def complete(self, org_id: str, key: str, status_code: int, response: Any) -> None:
        t = schema.idempotency
        with self._db.write() as conn:
            conn.execute(
                t.update()
                .where(t.c.org_id == org_id, t.c.key == key)
                .values(status_code=status_code, response=response)
            )

    def release(self, org_id: str, key: str, claimed_at: float | None = None) -> None:
        t = schema.idempotency
        mine = [] if claimed_at is None else [t.c.created_at == claimed_at]
        with self._db.write() as conn:
            conn.execute(
                t.delete().where(t.c.org_id == org_id, t.c.key == key, t.c.status_code == 0, *mine)
            )


def _key(row: Sequence[Any]) -> ApiKeyRecord:
    """The record of a row of ``api_keys``'s columns in table order (as both reads select)."""
    key_id, org_id, role, name, digest, created_at, revoked_at, user, groups = row
    return ApiKeyRecord(
        key_id,
        org_id,
        role,
        name,
        digest,
        created_at,
        revoked_at,
        user=user,
        groups=_decode_groups(groups),
    )


def _encode_groups(groups: tuple[str, ...]) -> str | None:
    return json.dumps(list(groups)) if groups else None


def _decode_groups(stored: str | None) -> tuple[str, ...]:
    return tuple(json.loads(stored)) if stored else ()


__all__ = [
    "ABANDONED_CLAIM_SECONDS",
    "ApiKeyRecord",
    "ApiKeys",
    "IdempotencyKeys",
    "IdempotencyRecord",
    "Secrets",
]
