"""Storage for access control: API keys, secrets and HTTP idempotency records.

A mixin of :class:`pausepoint.store.sql.SqlStore`: the same connection, the
same thread, the same transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pausepoint.store import schema
from pausepoint.store.dialects import driver_cursor, insert

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from sqlalchemy.engine import Connection

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


class AccessStore:
    """API keys, secrets and idempotency records."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[..., Any], *args: Any) -> Any: ...
        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...

    # -- API keys ------------------------------------------------------------------

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        await self._call(self._create_api_key, record)

    def _create_api_key(self, record: ApiKeyRecord) -> None:
        with self._write() as conn:
            conn.execute(
                schema.api_keys.insert().values(
                    id=record.id,
                    org_id=record.org_id,
                    role=record.role,
                    name=record.name,
                    hash=record.hash,
                    created_at=record.created_at,
                    revoked_at=None,
                )
            )

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        result: ApiKeyRecord | None = await self._call(self._get_api_key, key_id)
        return result

    def _get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        # Every request authenticates: plain SQL through the driver keeps this cheap.
        with self._read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(
                "SELECT id, org_id, role, name, hash, created_at, revoked_at "
                "FROM api_keys WHERE id = ?",
                (key_id,),
            )
            row = cursor.fetchone()
            return ApiKeyRecord(*row) if row else None

    async def list_api_keys(self, org_id: str | None = None) -> list[ApiKeyRecord]:
        result: list[ApiKeyRecord] = await self._call(self._list_api_keys, org_id)
        return result

    def _list_api_keys(self, org_id: str | None) -> list[ApiKeyRecord]:
        t = schema.api_keys
        query = sa.select(t).order_by(t.c.created_at)
        if org_id is not None:
            query = query.where(t.c.org_id == org_id)
        with self._read() as conn:
            return [_key(row) for row in conn.execute(query)]

    async def revoke_api_key(self, key_id: str, now: float, org_id: str | None = None) -> bool:
        result: bool = await self._call(self._revoke_api_key, key_id, now, org_id)
        return result

    def _revoke_api_key(self, key_id: str, now: float, org_id: str | None) -> bool:
        t = schema.api_keys
        query = t.update().where(t.c.id == key_id, t.c.revoked_at.is_(None))
        if org_id is not None:
            query = query.where(t.c.org_id == org_id)
        with self._write() as conn:
            return bool(conn.execute(query.values(revoked_at=now)).rowcount)

    async def count_api_keys(self) -> int:
        result: int = await self._call(self._count_api_keys)
        return result

    def _count_api_keys(self) -> int:
        with self._read() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(schema.api_keys)).scalar_one()
            )

    # -- secrets -------------------------------------------------------------------

    async def put_secret(self, org_id: str, name: str, sealed: str, now: float) -> None:
        await self._call(self._put_secret, org_id, name, sealed, now)

    def _put_secret(self, org_id: str, name: str, sealed: str, now: float) -> None:
        t = schema.secrets
        with self._write() as conn:
            upsert = insert(conn, t).values(org_id=org_id, name=name, value=sealed, updated_at=now)
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[t.c.org_id, t.c.name],
                    set_={"value": upsert.excluded.value, "updated_at": upsert.excluded.updated_at},
                )
            )

    async def delete_secret(self, org_id: str, name: str) -> bool:
        result: bool = await self._call(self._delete_secret, org_id, name)
        return result

    def _delete_secret(self, org_id: str, name: str) -> bool:
        t = schema.secrets
        with self._write() as conn:
            return bool(
                conn.execute(t.delete().where(t.c.org_id == org_id, t.c.name == name)).rowcount
            )

    async def sealed_secrets(self, org_id: str) -> dict[str, tuple[str, float]]:
        """Name → (sealed value, updated_at) for one organization."""
        result: dict[str, tuple[str, float]] = await self._call(self._sealed_secrets, org_id)
        return result

    def _sealed_secrets(self, org_id: str) -> dict[str, tuple[str, float]]:
        t = schema.secrets
        with self._read() as conn:
            rows = conn.execute(sa.select(t).where(t.c.org_id == org_id).order_by(t.c.name))
            return {row.name: (row.value, row.updated_at) for row in rows}

    # -- idempotency -----------------------------------------------------------------

    async def claim_idempotency(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Reserve ``record.key`` for this request (None) or return whoever holds it.

        The reservation is a row with ``status_code`` 0, inserted unless the key
        exists (``ON CONFLICT DO NOTHING``), so concurrent requests with one key
        cannot both proceed, in one process or several.
        """
        result: IdempotencyRecord | None = await self._call(self._claim_idempotency, record)
        return result

    def _claim_idempotency(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        t = schema.idempotency
        with self._write() as conn:
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

    async def complete_idempotency(
        self, org_id: str, key: str, status_code: int, response: Any
    ) -> None:
        await self._call(self._complete_idempotency, org_id, key, status_code, response)

    def _complete_idempotency(self, org_id: str, key: str, status_code: int, response: Any) -> None:
        t = schema.idempotency
        with self._write() as conn:
            conn.execute(
                t.update()
                .where(t.c.org_id == org_id, t.c.key == key)
                .values(status_code=status_code, response=response)
            )

    async def release_idempotency(self, org_id: str, key: str) -> None:
        """Drop an unfinished reservation (the request failed): a retry may try again."""
        await self._call(self._release_idempotency, org_id, key)

    def _release_idempotency(self, org_id: str, key: str) -> None:
        t = schema.idempotency
        with self._write() as conn:
            conn.execute(
                t.delete().where(t.c.org_id == org_id, t.c.key == key, t.c.status_code == 0)
            )


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id, row.org_id, row.role, row.name, row.hash, row.created_at, row.revoked_at
    )


__all__ = ["AccessStore", "ApiKeyRecord", "IdempotencyRecord"]
