"""The store on SQLite and PostgreSQL: migrations equal the schema (and keep the rows
already there); leases; group commit; API keys."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

from pausepoint.errors import InvalidInput
from pausepoint.service.auth import Authenticator, Principal, hash_key, new_api_key
from pausepoint.store import schema, wal
from pausepoint.store.database import NEWEST_MIGRATION
from pausepoint.store.dialects import asyncpg_url
from pausepoint.store.migrate import MIGRATIONS, head_revision
from pausepoint.store.records import Checkpoint, EventRecord, ExecutionRecord
from pausepoint.store.sql import SqlStore, create_store


async def describe(url: str) -> dict[str, Any]:
    """Tables, columns, keys and indexes as the database itself reports them."""
    engine = create_async_engine(asyncpg_url(url)) if is_postgres(url) else None

    def shape_of(conn: sa.Connection) -> dict[str, Any]:
        inspector = sa.inspect(conn)
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
        return shape

    if engine is not None:
        async with engine.connect() as async_conn:
            shape = await async_conn.run_sync(shape_of)
        await engine.dispose()
        return shape
    sync_engine = sa.create_engine(url)
    with sync_engine.connect() as conn:
        shape = shape_of(conn)
    sync_engine.dispose()
    return shape


async def in_transaction(url: str, work: Callable[[sa.Connection], None]) -> None:
    """Run ``work`` on a connection to ``url`` in one transaction, bypassing the store."""
    if is_postgres(url):
        engine = create_async_engine(asyncpg_url(url))
        async with engine.begin() as async_conn:
            await async_conn.run_sync(work)
        await engine.dispose()
        return
    sync_engine = sa.create_engine(url)
    with sync_engine.begin() as conn:
        work(conn)
    sync_engine.dispose()


async def recreate_from_metadata(url: str) -> None:
    """Drop everything and create the declared schema directly, without migrations."""

    def recreate(conn: sa.Connection) -> None:
        schema.metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE alembic_version"))
        schema.metadata.create_all(conn)

    await in_transaction(url, recreate)


def migrate_to(conn: sa.Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


async def test_all_migrations_equal_the_declared_schema(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open()
    await store.close()
    migrated = await describe(db_url)
    assert "executions" in migrated

    await recreate_from_metadata(db_url)
    assert migrated == await describe(db_url)


async def test_a_key_created_before_0007_keeps_working_as_itself(db_url: str) -> None:
    key = f"pp_0123456789ab_{'K' * 43}"

    def key_of_0006(conn: sa.Connection) -> None:
        migrate_to(conn, "0006")
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (id, org_id, role, name, hash, created_at) "
                "VALUES ('0123456789ab', 'acme', 'operator', 'old', :hash, 1.0)"
            ),
            {"hash": hash_key(key)},
        )

    await in_transaction(db_url, key_of_0006)
    store = SqlStore(db_url)
    await store.open()  # migrates to the newest revision
    try:
        principal = await Authenticator(store).authenticate(api_key=key, authorization=None)
        assert principal == Principal("acme", "operator", "key:0123456789ab", ())
        [listed] = await store.list_api_keys("acme")
        assert (listed.user, listed.groups) == (None, ())
    finally:
        await store.close()


async def test_a_keys_user_and_groups_are_stored_and_read_back(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open()
    try:
        _, alice = new_api_key(
            "acme", "operator", "alice", 1.0, user="alice@acme", groups=["ops", "security"]
        )
        _, plain = new_api_key("acme", "viewer", "ci", 2.0)
        for record in (alice, plain):
            await store.create_api_key(record)
        assert await store.get_api_key(alice.id) == alice
        assert await store.get_api_key(plain.id) == plain
        assert await store.list_api_keys("acme") == [alice, plain]
        assert (alice.user, alice.groups) == ("alice@acme", ("ops", "security"))
        assert (plain.user, plain.groups) == (None, ())
    finally:
        await store.close()


async def test_a_sqlite_file_offers_notifications_and_memory_none(tmp_path: Path) -> None:
    # Processes sharing the file notify each other (tests/integration/test_sqlite_notify.py).
    for url, notifies in ((f"sqlite:///{tmp_path / 'shared.db'}", True), ("sqlite://", False)):
        store = SqlStore(url)
        await store.open()
        try:
            assert await store.listen(lambda _execution_id: None) is notifies
        finally:
            await store.close()


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


def execution_record(execution_id: str, now: float, owner: str | None) -> ExecutionRecord:
    """A RUNNING execution, held by ``owner`` (if any) until ``now`` + 10."""
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


async def test_a_checkpoint_from_a_process_that_lost_its_lease_is_refused(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open()
    try:
        await store.create_execution(
            execution_record("e1", 100.0, "old"), _checkpoint("e1", "old", 0)
        )
        # The old owner's lease expired; a new process takes over.
        assert await store.claim("e1", "new", ttl=10, now=200.0)
        written = await store.checkpoint([_checkpoint("e1", "old", 1), _checkpoint("e1", "new", 1)])
        assert written == [False, True]
        events = await store.read_events("e1")
        assert [(e.seq, e.data) for e in events] == [(1, {"n": 1})]
    finally:
        await store.close()


async def test_a_checkpoint_that_claims_takes_a_free_lease_only_from_the_copy_it_read(
    db_url: str,
) -> None:
    """A paused execution resumed from a process's own copy takes the lease with its
    first checkpoint: refused when anyone wrote the execution since that copy, or when
    another process holds it; accepted (and holding the lease) otherwise."""
    store = SqlStore(db_url)
    await store.open()
    try:
        await store.create_execution(
            execution_record("e1", 100.0, None), _checkpoint("e1", "nobody", 0)
        )

        def claiming(owner: str, copy_seq: int, now: float) -> Checkpoint:
            return dataclasses.replace(
                _checkpoint("e1", owner, copy_seq + 1),
                updated_at=now,
                claim_until=now + 10,
                claim_from_seq=copy_seq,
            )

        assert await store.claim("e1", "b", ttl=10, now=101.0)
        assert await store.checkpoint([claiming("a", 0, 102.0)]) == [False]  # b holds it
        assert await store.checkpoint([_checkpoint("e1", "b", 1)]) == [True]  # b wrote seq 1
        assert await store.checkpoint([claiming("a", 0, 200.0)]) == [False]  # a's copy is old
        assert await store.checkpoint([claiming("a", 1, 200.0)]) == [True]
        record = await store.get_execution("e1")
        assert record is not None
        assert (record.lease_owner, record.lease_expires_at, record.event_seq) == ("a", 210.0, 2)
        assert await store.checkpoint([_checkpoint("e1", "b", 3)]) == [False]  # b lost it
        assert [e.seq for e in await store.read_events("e1")] == [1, 2]
    finally:
        await store.close()


async def test_json_columns_keep_what_the_fast_encoder_refuses(db_url: str) -> None:
    """JSON columns are written by orjson; an integer beyond 64 bits falls back to the
    standard encoder, keys that are not strings become strings as json writes them, and
    a NaN (not JSON at all, refused by PostgreSQL) is stored as null."""
    store = SqlStore(db_url)
    await store.open()
    try:
        await store.create_execution(
            execution_record("e1", 100.0, "me"), _checkpoint("e1", "me", 0)
        )
        step = dataclasses.replace(
            _checkpoint("e1", "me", 1),
            state={"status": "RUNNING", "big": 2**70, "by_number": {1: "one"}},
            events=[EventRecord("e1", 1, "task.completed", 2.0, {"ratio": float("nan"), "n": 1})],
        )
        assert await store.checkpoint([step]) == [True]
        loaded = await store.get_execution("e1")
        assert loaded is not None
        assert loaded.state["big"] == 2**70
        assert loaded.state["by_number"] == {"1": "one"}
        [event] = await store.read_events("e1")
        assert event.data == {"ratio": None, "n": 1}
    finally:
        await store.close()


async def test_a_live_lease_cannot_be_claimed_by_another_process(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open()
    try:
        await store.create_execution(execution_record("e1", 100.0, "a"), _checkpoint("e1", "a", 0))
        assert not await store.claim("e1", "b", ttl=10, now=105.0)
        assert await store.claim("e1", "b", ttl=10, now=111.0)
        assert await store.find_work("c", now=112.0) == []
        assert await store.find_work("c", now=200.0) == [("e1", False)]
    finally:
        await store.close()


async def test_group_commit_writes_many_executions_in_one_call(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open()
    try:
        for n in range(20):
            await store.create_execution(
                execution_record(f"e{n}", 100.0, "me"), _checkpoint(f"e{n}", "me", 0)
            )
        written = await store.checkpoint([_checkpoint(f"e{n}", "me", 1) for n in range(20)])
        assert written == [True] * 20
        for n in range(20):
            assert [e.seq for e in await store.read_events(f"e{n}")] == [1]
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url", ["mysql://me:hunter2@localhost/db", "pausepoint.db", "postgresql-ish://x/y"]
)
def test_an_unsupported_database_url_is_refused_naming_it(url: str) -> None:
    with pytest.raises(InvalidInput, match="unsupported database URL") as refused:
        create_store(url)
    assert "hunter2" not in str(refused.value)
    assert url.split("://")[-1].split("@")[-1] in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db",
        "postgresql://u:p@host/db",
        "postgres://u:p@host/db",
        "postgresql+asyncpg://u:p@host:5433/db",
        "postgresql://postgres:@/postgres?host=/tmp/pg",
    ],
)
def test_sqlite_and_postgresql_urls_are_accepted(url: str) -> None:
    assert create_store(url).dialect in ("sqlite", "postgresql")


async def test_opening_twice_is_idempotent(db_url: str) -> None:
    for _ in range(2):
        store = SqlStore(db_url)
        await store.open()
        await store.close()


async def test_json_floats_and_booleans_round_trip(db_url: str) -> None:
    store = SqlStore(db_url)
    await store.open()
    try:
        now = 1_763_950_000.123456
        record = dataclasses.replace(
            execution_record("e1", now, None),
            state={"status": "RUNNING", "nested": [1, 2.5, None, True, "é"]},
            labels={"team": "a b", "n": "1"},
        )
        await store.create_execution(record, _checkpoint("e1", "me", 0))
        loaded = await store.get_execution("e1")
        assert loaded is not None
        assert loaded.state == record.state
        assert loaded.labels == record.labels
        assert loaded.created_at == now
        assert loaded.lease_owner is None
        listed = await store.list_executions("default", labels={"team": "a b"})
        assert [e.id for e in listed] == ["e1"]
        assert await store.list_executions("default", labels={"team": "b"}) == []

        await store.put_flow("default", "ns", "f", "id: f", now)
        assert await store.delete_flow("default", "ns", "f")
        assert await store.get_flow("default", "ns", "f") is None
        again = await store.put_flow("default", "ns", "f", "id: f", now)
        assert again.revision == 2
        assert [f.revision for f in await store.list_flows("default")] == [2]

        await store.put_secret("default", "token", "sealed-1", now)
        await store.put_secret("default", "token", "sealed-2", now + 1)
        assert await store.sealed_secrets("default") == {"token": ("sealed-2", now + 1)}
    finally:
        await store.close()


# -- the SQLite write-ahead log ------------------------------------------------------------


def wal_size(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


def autocheckpoint_pages(store: SqlStore) -> int:
    with store._read() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


async def test_sqlite_commits_leave_the_wal_to_a_checkpointing_thread_and_it_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's own thread copies the WAL into the database file; the store's
    connection does only past BACKSTOP_PAGES, which under a steady stream of writes
    (where the log is never wholly copied as a write begins) keeps the log bounded."""
    monkeypatch.setattr(wal, "BACKSTOP_PAGES", 250)  # about 1 MB, to keep the test small
    path = tmp_path / "wal.db"
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    blob = "x" * 4000
    written = high_water = 0
    try:
        assert await store._call(autocheckpoint_pages, store) == wal.BACKSTOP_PAGES
        await store.create_execution(
            execution_record("e1", 100.0, "me"), _checkpoint("e1", "me", 0)
        )
        for seq in range(1, 3001):
            step = dataclasses.replace(
                _checkpoint("e1", "me", seq),
                events=[EventRecord("e1", seq, "task.started", 2.0, {"blob": blob})],
            )
            assert await store.checkpoint([step]) == [True]
            written += len(blob)
            high_water = max(high_water, wal_size(path))
        assert store._wal is not None and store._wal.checkpoints > 0
    finally:
        await store.close()
    # 12 MB went through a log that stayed within a few times the backstop. (While the
    # thread's checkpoint holds the checkpoint lock, the backstop's own is skipped, so on
    # a loaded machine the log outgrows the backstop for a while: 3 MiB was once passed.)
    assert written >= 12_000_000
    assert high_water < 5 * 2**20, f"the WAL grew to {high_water / 2**20:.1f} MiB"
    reopened = SqlStore(f"sqlite:///{path}")
    await reopened.open()
    try:
        assert len(await reopened.read_events("e1", limit=5000)) == 3000
    finally:
        await reopened.close()


async def test_closing_a_sqlite_store_just_after_a_write_stops_its_checkpointing_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "closing.db"
    for round_ in range(20):
        store = SqlStore(f"sqlite:///{path}")
        await store.open()
        execution_id = f"e{round_}"
        await store.create_execution(
            execution_record(execution_id, 100.0, "me"), _checkpoint(execution_id, "me", 0)
        )
        await store.checkpoint([_checkpoint(execution_id, "me", 1)])
        # The checkpointing thread is now waiting to gather more writes: stop it there.
        await asyncio.wait_for(store.close(), 10)
    assert not [t for t in threading.enumerate() if t.name == "pausepoint-wal-checkpoint"]


def test_the_newest_migration_named_in_the_store_is_alembics_head() -> None:
    # A database at NEWEST_MIGRATION opens without importing Alembic: it must be the head.
    assert head_revision() == NEWEST_MIGRATION
