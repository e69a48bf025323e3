"""Upgrading in place from the first release's schema (migration 0001), with data in it.

A database is made at migration 0001 only, and filled with plain INSERTs of that
schema's columns: a flow, and executions completed (with a resume command in its
audit trail), paused, queued, and running (its process stopped mid-task). The
rows come from executions today's code ran, cut down to the columns 0001 has.
Today's ``Engine`` then opens the database, migrates it to the newest revision
and carries on: paused stays paused and resumes to completion, the completed one
reads back unchanged, the running and queued ones run to completion.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from pausepoint.service.engine import Engine
from pausepoint.store import schema
from pausepoint.store.database import NEWEST_MIGRATION
from pausepoint.store.dialects import asyncpg_url
from pausepoint.store.migrate import _config
from pausepoint.testing import assert_eventually, fast_settings
from tests.chaos.worker import CHAOS_DIR

TIMEOUT = 30.0
FLOW = """
id: upgrade
namespace: old.release
tasks:
  - id: first
    type: return
    format: one
  - id: slow
    type: python
    function: chaos_tasks:step
    kwargs:
      label: slow
      ms: 400
  - id: wait
    type: pause
  - id: last
    type: return
    format: "{{ outputs.first.value }} then last"
"""
DONE = """
id: done
namespace: old.release
tasks:
  - id: only
    type: return
    format: done
"""
TABLES = ("flows", "executions", "task_runs", "events", "commands")


def migrate_to_first(conn: Connection) -> None:
    config = _config()
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "0001")
    finally:
        config.attributes.pop("connection", None)


async def make_rows(source: Path) -> dict[str, str]:
    """Run executions with today's code into ``source``; their ids by what they are."""
    settings = fast_settings(source, python_paths=(str(CHAOS_DIR),))
    ids: dict[str, str] = {}
    async with Engine(settings) as engine:
        await engine.put_flow(FLOW)
        await engine.put_flow(DONE)
        completed = await engine.start_execution("old.release", "upgrade")
        await engine.wait(completed.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
        await engine.resume(completed.id)
        assert (await engine.wait(completed.id, timeout=TIMEOUT)).state == "COMPLETED"
        paused = await engine.start_execution("old.release", "upgrade")
        await engine.wait(paused.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
        running = await engine.start_execution("old.release", "upgrade")

        async def in_slow_step() -> bool:
            runs = await engine.store.load_task_runs(running.id)
            return any(r["task_id"] == "slow" and r["state"] == "RUNNING" for r in runs)

        await assert_eventually(in_slow_step, what="the running execution inside its slow step")
        ids.update(completed=completed.id, paused=paused.id, running=running.id)
    # Recorded, never picked up: this engine runs nothing.
    async with Engine(settings, run_executions=False) as recorder:
        ids["queued"] = (await recorder.start_execution("old.release", "done")).id
    return ids


def first_release_rows(source: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the 0001 tables in ``source``, with only the columns 0001 has."""
    first = sa.MetaData()
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        migrate_to_first(conn)
        first.reflect(conn, only=TABLES)
    engine.dispose()
    conn3 = sqlite3.connect(source)
    conn3.row_factory = sqlite3.Row
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for name in TABLES:
            columns = [c.name for c in first.tables[name].columns]
            table = schema.metadata.tables[name]
            json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
            found[name] = [
                {
                    column: (
                        json.loads(row[column])
                        if column in json_columns
                        else bool(row[column])
                        if column == "deleted"
                        else row[column]
                    )
                    for column in columns
                }
                for row in conn3.execute(f"SELECT {', '.join(columns)} FROM {name}")
            ]
    finally:
        conn3.close()
    return found


def insert_first_release(conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    migrate_to_first(conn)
    assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0001"
    for name in TABLES:
        table = schema.metadata.tables[name]
        if rows[name]:
            columns = list(rows[name][0])
            conn.execute(sa.insert(table).values([{c: r[c] for c in columns} for r in rows[name]]))


async def build_first_release(url: str, fill: Callable[[Connection], None]) -> None:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            fill(conn)
        engine.dispose()
        return
    from sqlalchemy.ext.asyncio import create_async_engine

    async_engine = create_async_engine(asyncpg_url(url))
    async with async_engine.begin() as conn:
        await conn.run_sync(fill)
    await async_engine.dispose()


async def test_a_first_release_database_upgrades_in_place(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "today.db"
    ids = await make_rows(source)
    rows = first_release_rows(source)
    statuses = {row["id"]: row["status"] for row in rows["executions"]}
    assert statuses[ids["running"]] == "RUNNING" and statuses[ids["queued"]] == "QUEUED"
    assert statuses[ids["paused"]] == "PAUSED" and statuses[ids["completed"]] == "COMPLETED"
    await build_first_release(db_url, lambda conn: insert_first_release(conn, rows))

    settings = fast_settings(db_url, python_paths=(str(CHAOS_DIR),))
    async with Engine(settings, serve=True) as engine:

        def revision() -> str | None:
            with engine.store._read() as conn:
                found = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                return str(found.scalar())

        assert await engine.store._call(revision) == NEWEST_MIGRATION
        assert (await engine.state(ids["paused"])).state == "PAUSED"
        completed = await engine.execution(ids["completed"])
        assert completed.state == "COMPLETED"
        events = await engine.events(ids["completed"])
        old_events = [e for e in rows["events"] if e["execution_id"] == ids["completed"]]
        assert [(e.seq, e.type) for e in events] == [(e["seq"], e["type"]) for e in old_events]
        assert [c.kind for c in await engine.audit(ids["completed"])] == ["resume"]
        for name in ("running", "queued"):
            view = await engine.wait(
                ids[name], until=lambda v: v.state in ("PAUSED", "COMPLETED"), timeout=TIMEOUT
            )
            assert view.state == ("PAUSED" if name == "running" else "COMPLETED"), name
        for name in ("paused", "running"):
            await engine.resume(ids[name])
            view = await engine.wait(ids[name], timeout=TIMEOUT)
            assert view.state == "COMPLETED", name
            # ``last`` reads what ``first`` returned before the upgrade.
            (last,) = [run for run in view.task_runs if run.task_id == "last"]
            assert last.outputs == {"value": "one then last"}, name
