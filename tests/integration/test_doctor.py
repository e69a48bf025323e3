"""``pausepoint doctor`` on real databases: healthy, stuck leases, a schema it does not know,
a database it cannot reach; on SQLite and PostgreSQL alike.

The disk-full and read-only cases are in ``tests/chaos/test_sqlite_faults.py``,
where a real file system fills and turns read-only.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pausepoint.cli.main import dispatch
from pausepoint.cli.options import UsageError, build_parser
from pausepoint.store.database import NEWEST_MIGRATION
from pausepoint.store.sql import SqlStore
from tests.api.conftest import free_port
from tests.integration.test_postgres_store import create_running


async def doctor(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = await dispatch(build_parser().parse_args(["--db", url, "doctor", *extra]))
    return code, capsys.readouterr().out


async def doctor_json(
    url: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out = await doctor(url, capsys, "--json")
    report = json.loads(out)
    assert report["healthy"] == (code == 0)
    return code, {finding["check"]: finding for finding in report["findings"]}


async def created(url: str) -> SqlStore:
    store = SqlStore(url)
    await store.open()
    return store


async def test_a_fresh_database_is_healthy(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = await created(db_url)
    try:
        code, findings = await doctor_json(db_url, capsys)
    finally:
        await store.close()
    assert code == 0, findings
    assert findings["schema"]["status"] == "ok"
    assert findings["schema"]["value"] == NEWEST_MIGRATION
    assert findings["leases"]["status"] == "ok"
    assert findings["idempotency"]["status"] == "ok"
    if db_url.startswith("sqlite"):
        for check in ("integrity", "wal_size", "free_space", "writable", "pages"):
            assert findings[check]["status"] == "ok", findings[check]
    else:
        assert findings["connection"]["status"] == "ok"
        assert findings["size"]["value"] > 0
    code, text = await doctor(db_url, capsys)
    assert code == 0 and text.rstrip().endswith("healthy"), text


async def test_stuck_leases_are_a_problem(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An unfinished execution whose lease ran out long ago: no runtime took it over."""
    store = await created(db_url)
    try:
        await create_running(store, "stuck-1", owner="a-dead-worker")  # lease ran out in 1970
        code, findings = await doctor_json(db_url, capsys)
    finally:
        await store.close()
    assert code == 1
    assert findings["leases"]["status"] == "problem"
    assert findings["leases"]["value"] == 1
    assert "is a server or worker running" in findings["leases"]["detail"]


@pytest.mark.parametrize(
    ("revision", "status", "code"), [("0001", "warning", 0), ("9999", "problem", 1)]
)
async def test_a_schema_other_than_the_newest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], revision: str, status: str, code: int
) -> None:
    """Older: the next server migrates it (a warning); newer: this build is too old."""
    path = tmp_path / "pausepoint.db"
    await (await created(f"sqlite:///{path}")).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    exit_code, findings = await doctor_json(str(path), capsys)
    assert (exit_code, findings["schema"]["status"]) == (code, status), findings["schema"]


async def test_a_database_that_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = await doctor(str(tmp_path / "missing.db"), capsys)
    assert code == 1
    assert "missing.db: no such file" in text
    assert not (tmp_path / "missing.db").exists(), "the doctor created the database"


async def test_a_postgresql_server_that_cannot_be_reached(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://pausepoint:secret@127.0.0.1:{free_port()}/pausepoint"
    code, findings = await doctor_json(url, capsys)
    assert code == 1
    assert findings["connection"]["status"] == "problem"
    assert "cannot connect" in findings["connection"]["detail"]
    code, text = await doctor(url, capsys)
    assert "secret" not in text, "the doctor printed the password"


async def test_doctor_needs_the_database_not_a_server() -> None:
    args = build_parser().parse_args(["--url", "http://127.0.0.1:9", "doctor"])
    with pytest.raises(UsageError, match="give --db"):
        await dispatch(args)
