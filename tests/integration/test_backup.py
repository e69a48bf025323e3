"""Backup while a real server process runs executions, restore, and start on the copy.

A serving worker process (``tests.chaos.worker``) runs twelve-step flows that this
test keeps starting; ``pausepoint backup`` copies the database meanwhile. The copy
is compared with the live database row by row as of the backup: an execution that
had ended is identical in both, one in flight has in the copy a prefix of the live
one's events. ``pausepoint restore`` puts the copy in a new directory, and a server
started on it finds every paused execution paused and finishes every running one.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings
from tests.chaos.flows import sequential
from tests.chaos.worker import CHAOS_DIR, worker_settings
from tests.chaos.workers import start_worker

pytestmark = pytest.mark.e2e  # a server and the CLI as real subprocesses

TIMEOUT = 60.0
FLOW = sequential(12)
HOLD = """
id: hold
namespace: chaos
tasks:
  - id: wait
    type: pause
  - id: after
    type: return
    format: resumed
"""
TERMINAL = ("COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT")
# Columns that say who holds or will look at an execution next: not its content.
LEASE_COLUMNS = ("lease_owner", "lease_expires_at", "wake_at")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pausepoint", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("PAUSEPOINT_")},
        check=False,
    )


def rows(path: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def compare_as_of_backup(backup: Path, live: Path) -> tuple[int, int]:
    """Check the copy against the live database; (ended, in flight) executions in the copy."""
    ended = in_flight = 0
    live_executions = {row["id"]: row for row in rows(live, "SELECT * FROM executions")}
    for copied in rows(backup, "SELECT * FROM executions"):
        now = live_executions.pop(copied["id"])
        copied_events = rows(
            backup, "SELECT * FROM events WHERE execution_id = ? ORDER BY seq", copied["id"]
        )
        live_events = rows(
            live, "SELECT * FROM events WHERE execution_id = ? ORDER BY seq", copied["id"]
        )
        assert [e["seq"] for e in copied_events] == list(range(1, copied["event_seq"] + 1))
        assert live_events[: len(copied_events)] == copied_events, copied["id"]
        if copied["status"] in TERMINAL:
            ended += 1
            for column in LEASE_COLUMNS:
                copied.pop(column), now.pop(column)
            assert copied == now, copied["id"]
            for table in ("task_runs", "commands"):
                sql = f"SELECT * FROM {table} WHERE execution_id = ? ORDER BY id"
                assert rows(backup, sql, copied["id"]) == rows(live, sql, copied["id"]), table
        else:
            in_flight += copied["status"] != "PAUSED"
    return ended, in_flight


async def test_backup_under_load_restores_paused_and_running_executions(tmp_path: Path) -> None:
    live = tmp_path / "live" / "pausepoint.db"
    live.parent.mkdir()
    url = f"sqlite:///{live}"
    client = Engine(worker_settings(url), run_executions=False)
    await client.start()
    worker = start_worker(url, tmp_path / "run.log", tmp_path / "worker.log")
    loading = True
    started: list[str] = []

    async def load() -> None:
        while loading:
            started.append((await client.start_execution("chaos", FLOW.flow_id)).id)
            await asyncio.sleep(0.02)

    try:
        await client.put_flow(FLOW.source)
        await client.put_flow(HOLD)
        await client.put_secret("TOKEN", "s3cret")
        await worker.wait_ready()
        paused = []
        for _ in range(3):
            view = await client.start_execution("chaos", "hold")
            await client.wait(view.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
            paused.append(view.id)
        loader = asyncio.create_task(load())

        async def some_ended() -> bool:
            counts = await client.count_executions_by_state()
            return counts.get("COMPLETED", 0) >= 5 and counts.get("RUNNING", 0) >= 1

        await assert_eventually(some_ended, timeout=TIMEOUT, what="executions ending under load")
        backup = tmp_path / "backups" / "pausepoint.backup"
        backup.parent.mkdir()
        made = await asyncio.to_thread(cli, "backup", "--db", url, str(backup))
        assert made.returncode == 0, made.stdout + made.stderr
        assert "secrets key" in made.stdout
        refused = await asyncio.to_thread(cli, "backup", "--db", url, str(backup))
        assert refused.returncode == 1 and "exists already" in refused.stdout + refused.stderr

        loading = False
        await loader
        for execution_id in started:
            view = await client.wait(execution_id, timeout=TIMEOUT)
            assert view.state == "COMPLETED", (execution_id, view.state, worker.log_tail())
        ended, in_flight = compare_as_of_backup(backup, live)
        assert ended >= 5 and in_flight >= 1, (ended, in_flight)
    finally:
        loading = False
        await worker.stop()
        await client.stop()

    restored = tmp_path / "restored" / "pausepoint.db"
    occupied = tmp_path / "live"
    refused = cli("restore", str(backup), "--db", f"sqlite:///{occupied / 'new.db'}")
    assert refused.returncode == 1 and "not empty" in refused.stdout + refused.stderr
    done = cli("restore", str(backup), "--db", f"sqlite:///{restored}")
    assert done.returncode == 0, done.stdout + done.stderr
    copied = {row["id"]: row["status"] for row in rows(backup, "SELECT id, status FROM executions")}
    settings = fast_settings(restored, python_paths=(str(CHAOS_DIR),))
    async with Engine(settings, serve=True) as server:
        assert await server._read_secrets(server.org_id) == {"TOKEN": "s3cret"}
        for execution_id in paused:
            assert (await server.state(execution_id)).state == "PAUSED"
        for execution_id, status in copied.items():
            if status in TERMINAL or execution_id in paused:
                continue
            view = await server.wait(execution_id, timeout=TIMEOUT)
            assert view.state == "COMPLETED", (execution_id, view.state)
        for execution_id in paused:
            await server.resume(execution_id)
            assert (await server.wait(execution_id, timeout=TIMEOUT)).state == "COMPLETED"


def test_backup_and_restore_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    missing = cli("backup", "--db", f"sqlite:///{tmp_path / 'none.db'}", str(tmp_path / "b"))
    assert missing.returncode == 1 and "no SQLite database there" in missing.stdout + missing.stderr
    postgres = cli("backup", "--db", "postgresql://pp@db.example/pausepoint", str(tmp_path / "b"))
    assert postgres.returncode == 1 and "pg_dump -Fc" in postgres.stdout + postgres.stderr
    assert "pg_restore" in postgres.stdout and "PAUSEPOINT_SECRETS_KEY" in postgres.stdout
    no_target = cli("restore", str(tmp_path / "b"))
    assert no_target.returncode == 2 and "--db" in no_target.stdout + no_target.stderr
    (tmp_path / "not-a-db").write_text("hello")
    bogus = cli("restore", str(tmp_path / "not-a-db"), "--db", f"sqlite:///{tmp_path / 'n/p.db'}")
    assert bogus.returncode == 1 and "not a pausepoint backup" in bogus.stdout + bogus.stderr
    assert not (tmp_path / "n").exists()
