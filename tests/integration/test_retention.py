"""Retention: purging ended executions, on SQLite and PostgreSQL, from the service, the
HTTP API and the command line.

Executions are made the real way (flows run by the engine); "old" ones ended before
the engine's clock was moved two hours ahead, so a purge of what ended over an hour
ago takes them and leaves what ended after the move. Every table is counted before
and after: exactly the purged executions' rows go.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from pausepoint.api import create_app
from pausepoint.service.auth import Principal
from pausepoint.service.engine import Engine
from pausepoint.service.operations import StartRequest
from pausepoint.service.retention import apply_retention, purge_older_than
from pausepoint.storage import task_file_uri
from pausepoint.store import schema
from pausepoint.testing import assert_eventually, fast_settings
from tests.api.conftest import serving

TIMEOUT = 30.0
HOUR = 3600.0

FLOWS = [
    """
id: done
namespace: ret.a
tasks:
  - id: say
    type: log
    message: hello
  - id: out
    type: return
    format: done
""",
    """
id: hold
namespace: ret.a
tasks:
  - id: wait
    type: pause
  - id: out
    type: return
    format: resumed
""",
    """
id: child
namespace: ret.b
tasks:
  - id: wait
    type: pause
""",
    """
id: parent
namespace: ret.b
tasks:
  - id: call
    type: subflow
    namespace: ret.b
    flowId: child
    wait: false
""",
    """
id: done
namespace: ret.keep
tasks:
  - id: out
    type: return
    format: kept
""",
]


class Clock:
    """The wall clock, moved ahead by the test so that what ended before is old."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def open_engine(url: str, clock: Clock, serve: bool = False, **settings: Any) -> Engine:
    engine = Engine(fast_settings(url, **settings), clock=clock, serve=serve)
    await engine.start()
    for source in FLOWS:
        await engine.put_flow(source)
    return engine


@pytest.fixture
async def engine(db_url: str, clock: Clock) -> AsyncIterator[Engine]:
    # One execution per transaction: the purges below go through several batches.
    running = await open_engine(db_url, clock, purge_batch=1)
    try:
        yield running
    finally:
        await running.stop()


async def run_to(engine: Engine, namespace: str, flow_id: str, state: str) -> str:
    started = await engine.start_execution(namespace, flow_id)
    view = await engine.wait(started.id, until=lambda v: v.state == state, timeout=TIMEOUT)
    assert view.state == state
    return view.id


async def rows_of(engine: Engine, execution_id: str) -> dict[str, int]:
    """How many rows each table holds for ``execution_id``."""

    def count(conn: sa.Connection, table: sa.Table, where: Any) -> int:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()
        )

    def read() -> dict[str, int]:
        e, tr, c, x = schema.events, schema.task_runs, schema.commands, schema.executions
        links, files, idem = schema.execution_links, schema.stored_files, schema.idempotency
        with engine.store._read() as conn:
            return {
                "executions": count(conn, x, x.c.id == execution_id),
                "events": count(conn, e, e.c.execution_id == execution_id),
                "task_runs": count(conn, tr, tr.c.execution_id == execution_id),
                "commands": count(conn, c, c.c.execution_id == execution_id),
                "links": count(
                    conn,
                    links,
                    sa.or_(links.c.child_id == execution_id, links.c.parent_id == execution_id),
                ),
                "files": count(conn, files, files.c.uri.contains(f"/executions/{execution_id}/")),
                "idempotency": count(conn, idem, idem.c.response["id"].as_string() == execution_id),
            }

    return await engine.store._call(read)


async def make_executions(engine: Engine, clock: Clock) -> dict[str, str]:
    """Old ended executions (one started with an Idempotency-Key and holding a file,
    one resumed: it has commands), an old paused one, an old ended parent whose
    child still waits, and, after the clock moves ahead, a recent ended one."""
    ids: dict[str, str] = {}
    principal = Principal(engine.org_id, "admin", "tester")
    reply = await engine.call(
        StartRequest(namespace="ret.a", flow_id="done"), principal, idempotency_key="start-1"
    )
    ids["old_done"] = (await engine.wait(reply.value.id, timeout=TIMEOUT)).id
    ids["old_controlled"] = await run_to(engine, "ret.a", "hold", "PAUSED")
    await engine.resume(ids["old_controlled"])
    await engine.wait(ids["old_controlled"], timeout=TIMEOUT)
    ids["old_paused"] = await run_to(engine, "ret.a", "hold", "PAUSED")
    ids["old_parent"] = await run_to(engine, "ret.b", "parent", "COMPLETED")
    children = await engine.execution_page(parent_id=ids["old_parent"])
    (child,) = children.items
    ids["child"] = child.id
    await engine.wait(ids["child"], until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    clock.offset = 2 * HOUR
    ids["recent_done"] = await run_to(engine, "ret.a", "done", "COMPLETED")
    for name in ("old_done", "recent_done"):
        uri = task_file_uri("ret.a", "done", ids[name], "out", "r1", "result.txt")
        await engine.store.put_file(engine.org_id, uri, b"data", clock())
    return ids


async def test_purge_deletes_exactly_the_ended_executions_past_the_cutoff(
    engine: Engine, clock: Clock
) -> None:
    ids = await make_executions(engine, clock)
    before = {name: await rows_of(engine, id_) for name, id_ in ids.items()}
    assert before["old_done"]["files"] == 1 and before["old_done"]["idempotency"] == 1
    assert before["old_controlled"]["commands"] >= 1
    assert before["old_parent"]["links"] == 1

    dry = await purge_older_than(engine, "PT1H", dry_run=True)
    assert dry.dry_run and dry.executions == 2
    assert {name: await rows_of(engine, id_) for name, id_ in ids.items()} == before

    done = await purge_older_than(engine, "PT1H")
    assert done.model_dump(exclude={"dry_run"}) == dry.model_dump(exclude={"dry_run"})
    gone = {"old_done", "old_controlled"}
    expected = {
        table: sum(before[name][table] for name in gone)
        for table in ("events", "task_runs", "commands", "files", "idempotency")
    }
    assert {table: getattr(done, table) for table in expected} == expected
    after = {name: await rows_of(engine, id_) for name, id_ in ids.items()}
    for name in gone:
        assert set(after[name].values()) == {0}, name
        assert await engine.store.get_execution(ids[name]) is None
    for name in ids.keys() - gone:
        assert after[name] == before[name], name
    assert (await engine.state(ids["old_paused"])).state == "PAUSED"

    # The child ends: its parent has no running child left and goes, with the link.
    await engine.resume(ids["child"])
    await engine.wait(ids["child"], timeout=TIMEOUT)
    again = await purge_older_than(engine, "PT1H")
    assert again.executions == 1 and again.links == 1
    assert await engine.store.get_execution(ids["old_parent"]) is None
    assert (await rows_of(engine, ids["child"]))["executions"] == 1

    # The paused execution resumes and completes, untouched by the purges.
    await engine.resume(ids["old_paused"])
    assert (await engine.wait(ids["old_paused"], timeout=TIMEOUT)).state == "COMPLETED"


async def test_audit_retention_keeps_controlled_executions_longer(
    db_url: str, clock: Clock
) -> None:
    engine = await open_engine(db_url, clock, audit_retention="P1D")
    try:
        ids = await make_executions(engine, clock)
        report = await purge_older_than(engine, "PT1H")
        assert report.executions == 1
        assert await engine.store.get_execution(ids["old_done"]) is None
        audit = await engine.audit(ids["old_controlled"])
        assert [command.kind for command in audit] == ["resume"]
        clock.offset += 2 * 86400.0  # past the audit retention too
        assert (await purge_older_than(engine, "PT1H")).executions >= 1
        assert await engine.store.get_execution(ids["old_controlled"]) is None
    finally:
        await engine.stop()


async def test_the_most_specific_retention_setting_wins(tmp_path: Path, clock: Clock) -> None:
    retention = {"default": "PT1H", "default/ret.keep": "P30D", "other": "PT1S"}
    engine = await open_engine(str(tmp_path / "r.db"), clock, retention=retention)
    try:
        purged = await run_to(engine, "ret.a", "done", "COMPLETED")
        kept = await run_to(engine, "ret.keep", "done", "COMPLETED")
        paused = await run_to(engine, "ret.a", "hold", "PAUSED")
        clock.offset = 2 * HOUR
        dry = await apply_retention(engine, dry_run=True)
        assert dry.executions == 1
        report = await apply_retention(engine)
        assert report.executions == 1
        assert await engine.store.get_execution(purged) is None
        assert await engine.store.get_execution(kept) is not None
        assert (await engine.state(paused)).state == "PAUSED"
    finally:
        await engine.stop()


LISTENER = """
id: listener
namespace: ret.listen
triggers:
  - id: after_done
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: ret.a
        flowId: done
tasks:
  - id: out
    type: return
    format: heard
"""


async def test_a_purge_leaves_what_flow_triggers_have_not_looked_at(
    tmp_path: Path, clock: Clock
) -> None:
    engine = await open_engine(str(tmp_path / "ft.db"), clock)
    try:
        await engine.put_flow(LISTENER)
        ended = await run_to(engine, "ret.a", "done", "COMPLETED")
        record = await engine.store.get_execution(ended)
        assert record is not None and record.ended_at is not None
        store = engine.store
        assert await store.take_scheduler_lease("triggers", "tester", 60.0, clock())
        # The trigger loop is behind: it has not looked at what ended after its cursor.
        await store.set_scheduler_cursor("triggers", "tester", record.ended_at - 1)
        clock.offset = HOUR
        assert (await purge_older_than(engine, "PT1S")).executions == 0
        # Its lookback (60 s) past the end: the execution was seen and may go.
        await store.set_scheduler_cursor("triggers", "tester", record.ended_at + 61)
        assert (await purge_older_than(engine, "PT1S")).executions == 1
    finally:
        await engine.stop()


async def test_a_server_applies_retention_in_the_background(tmp_path: Path, clock: Clock) -> None:
    settings = {"retention": {"*": "PT0S"}, "purge_interval": 0.05}
    engine = await open_engine(str(tmp_path / "bg.db"), clock, serve=True, **settings)
    try:
        paused = await run_to(engine, "ret.a", "hold", "PAUSED")
        ended = [await run_to(engine, "ret.a", "done", "COMPLETED") for _ in range(3)]

        async def purged() -> bool:
            found = [await engine.store.get_execution(id_) for id_ in ended]
            return found == [None, None, None]

        await assert_eventually(purged, what="the retention loop purging ended executions")
        assert (await engine.state(paused)).state == "PAUSED"
    finally:
        await engine.stop()


def test_a_bad_retention_setting_is_refused_naming_its_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"retention\['acme/prod'\]: 'thirty days'"):
        fast_settings(tmp_path / "x.db", retention={"acme/prod": "thirty days"})
    with pytest.raises(ValueError, match="retention key 'acme/'"):
        fast_settings(tmp_path / "x.db", retention={"acme/": "PT1H"})
    with pytest.raises(ValueError, match="audit_retention"):
        fast_settings(tmp_path / "x.db", audit_retention="1 year")


async def test_purge_api_is_for_admins_of_the_callers_organization(
    tmp_path: Path, clock: Clock
) -> None:
    engine = await open_engine(str(tmp_path / "api.db"), clock)
    try:
        acme = engine.as_org("acme")
        for source in FLOWS:
            await acme.put_flow(source)
        keys = {
            (org, role): (await engine.as_org(org).create_api_key(role))[0]
            for org in ("acme", "globex")
            for role in ("viewer", "operator", "admin")
        }
        ended = await run_to(acme, "ret.a", "done", "COMPLETED")
        clock.offset = 2 * HOUR
        body = {"older_than": "PT1H"}
        async with (
            serving(create_app(engine)) as (base_url, _),
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):

            async def purge(org: str, role: str, payload: dict[str, Any]) -> httpx.Response:
                headers = {"X-API-Key": keys[(org, role)]}
                return await http.post("/api/v1/purge", json=payload, headers=headers)

            for role in ("viewer", "operator"):
                refused = await purge("acme", role, body)
                assert refused.status_code == 403, refused.text
            bad = await purge("acme", "admin", {"older_than": "soon"})
            assert bad.status_code == 422
            (problem,) = bad.json()["detail"]
            assert problem["loc"] == ["body", "older_than"] and "soon" in problem["msg"]
            other = await purge("globex", "admin", body)
            assert other.status_code == 200 and other.json()["executions"] == 0
            dry = await purge("acme", "admin", {**body, "dry_run": True})
            assert dry.status_code == 200 and dry.json()["executions"] == 1
            assert await engine.store.get_execution(ended) is not None
            done = await purge("acme", "admin", body)
            assert done.status_code == 200, done.text
            assert done.json()["executions"] == 1 and done.json()["events"] > 0
        assert await engine.store.get_execution(ended) is None
    finally:
        await engine.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "pausepoint", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


async def test_purge_command_line(tmp_path: Path, clock: Clock) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = await open_engine(db, clock)
    try:
        ended = await run_to(engine, "ret.a", "done", "COMPLETED")
        paused = await run_to(engine, "ret.a", "hold", "PAUSED")
    finally:
        await engine.stop()
    bad = run_cli("purge", "--db", db, "--older-than", "banana")
    assert bad.returncode == 1 and "older_than: 'banana'" in bad.stdout + bad.stderr
    dry = run_cli("purge", "--db", db, "--older-than", "PT0S", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 1 ended executions" in dry.stdout
    nothing = run_cli("purge", "--db", db)
    assert nothing.returncode == 2 and "PAUSEPOINT_RETENTION" in nothing.stdout + nothing.stderr
    elsewhere = run_cli("purge", "--db", db, "--older-than", "PT0S", "--org", "acme")
    assert "deleted 0 ended executions" in elsewhere.stdout, elsewhere.stderr
    done = run_cli("purge", "--db", db, "--older-than", "PT0S", "--org", "*", "--namespace", "ret")
    assert done.returncode == 0, done.stderr
    assert "deleted 1 ended executions" in done.stdout
    engine = await open_engine(db, clock)
    try:
        assert await engine.store.get_execution(ended) is None
        assert (await engine.state(paused)).state == "PAUSED"
    finally:
        await engine.stop()
