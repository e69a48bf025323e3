"""The store: migrations equal the declared schema; WAL; leases; group commit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pausepoint.store import schema
from pausepoint.store.records import Checkpoint, EventRecord, ExecutionRecord
from pausepoint.store.sql import SqlStore


def describe(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    shape: dict[str, Any] = {}
    for table in sorted(t for t in inspector.get_table_names() if t != "alembic_version"):
        shape[table] = {
            "columns": {
                c["name"]: (str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            },
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        }
    engine.dispose()
    return shape


async def test_all_migrations_equal_the_declared_schema(tmp_path: Path) -> None:
    migrated = tmp_path / "migrated.db"
    store = SqlStore(f"sqlite:///{migrated}")
    await store.open()
    await store.close()

    fresh = tmp_path / "fresh.db"
    engine = sa.create_engine(f"sqlite:///{fresh}")
    schema.metadata.create_all(engine)
    engine.dispose()

    assert describe(f"sqlite:///{migrated}") == describe(f"sqlite:///{fresh}")


async def test_opening_twice_is_idempotent_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    for _ in range(2):
        store = SqlStore(f"sqlite:///{path}")
        await store.open()
        await store.close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def _execution(execution_id: str, now: float, owner: str | None) -> ExecutionRecord:
    return ExecutionRecord(
        id=execution_id,
        org_id="default",
        namespace="ns",
        flow_id="f",
        flow_revision=1,
        status="RUNNING",
        state={"status": "RUNNING"},
        labels={},
        created_at=now,
        updated_at=now,
        started_at=now,
        ended_at=None,
        event_seq=0,
        lease_owner=owner,
        lease_expires_at=now + 10 if owner else None,
        commands_version=0,
    )


def _checkpoint(execution_id: str, owner: str, seq: int) -> Checkpoint:
    return Checkpoint(
        execution_id=execution_id,
        owner=owner,
        status="RUNNING",
        state={"status": "RUNNING"},
        started_at=1.0,
        ended_at=None,
        updated_at=2.0,
        events=[EventRecord(execution_id, seq, "task.started", 2.0, {"n": seq})],
        event_seq=seq,
    )


async def test_a_checkpoint_from_a_process_that_lost_its_lease_is_refused(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'lease.db'}")
    await store.open()
    try:
        await store.create_execution(_execution("e1", 100.0, "old"), _checkpoint("e1", "old", 0))
        # The old owner's lease expired; a new process takes over.
        assert await store.claim("e1", "new", ttl=10, now=200.0)
        written = await store.checkpoint([_checkpoint("e1", "old", 1), _checkpoint("e1", "new", 1)])
        assert written == [False, True]
        events = await store.read_events("e1")
        assert [(e.seq, e.data) for e in events] == [(1, {"n": 1})]
    finally:
        await store.close()


async def test_a_live_lease_cannot_be_claimed_by_another_process(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'claim.db'}")
    await store.open()
    try:
        await store.create_execution(_execution("e1", 100.0, "a"), _checkpoint("e1", "a", 0))
        assert not await store.claim("e1", "b", ttl=10, now=105.0)
        assert await store.claim("e1", "b", ttl=10, now=111.0)
        assert await store.find_work("c", now=112.0) == []
        assert await store.find_work("c", now=200.0) == [("e1", False)]
    finally:
        await store.close()


async def test_group_commit_writes_many_executions_in_one_call(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'group.db'}")
    await store.open()
    try:
        for n in range(20):
            await store.create_execution(
                _execution(f"e{n}", 100.0, "me"), _checkpoint(f"e{n}", "me", 0)
            )
        written = await store.checkpoint([_checkpoint(f"e{n}", "me", 1) for n in range(20)])
        assert written == [True] * 20
        for n in range(20):
            assert [e.seq for e in await store.read_events(f"e{n}")] == [1]
    finally:
        await store.close()


def test_only_sqlite_urls_are_accepted_by_the_embedded_store() -> None:
    import pytest

    from pausepoint.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unsupported database URL"):
        SqlStore("mysql://localhost/db")
