"""SQLite on a disk that fills: 503 while it is full, nothing half-written, back when space returns.

The database lives on a tmpfs mounted with ``size=`` (as root; skipped with the
reason otherwise). A ballast file fills what is left, so SQLite's writes fail
with ``SQLITE_FULL`` (or an I/O error while growing its shared memory); deleting
the ballast gives the space back. Nothing is simulated: the kernel refuses the
writes.

Quick mode runs in the normal suite; ``PAUSEPOINT_CHAOS_FULL=1`` (``make soak``)
fills and frees the disk more times under more load.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import re
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from pausepoint.errors import StoreUnavailable
from pausepoint.store.sqlite import SqliteDatabase
from pausepoint.testing import assert_eventually
from tests.api.conftest import free_port
from tests.api.matrix_support import HERE
from tests.api.test_server_crash import KEY, ServerProcess, server_process, wait_healthy

pytestmark = pytest.mark.chaos

FULL = os.environ.get("PAUSEPOINT_CHAOS_FULL") == "1"
REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (to fill it) needs root")
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(ballast: Path) -> int:
    """Write ``ballast`` until the file system has no byte left; its size."""
    chunk = b"\0" * 65536
    written = 0
    with ballast.open("ab", buffering=0) as out:
        while True:
            try:
                written += out.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                break
        # The last pages: a write of what fits returns short, then ENOSPC.
        for size in (4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    written += out.write(chunk[:size])
    return written


def _create_scratch(db: SqliteDatabase) -> None:
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (tag TEXT PRIMARY KEY, body BLOB)")


def _insert(db: SqliteDatabase, tag: str, size: int) -> str:
    with db.write() as conn:
        conn.exec_driver_sql("INSERT INTO scratch VALUES (?, randomblob(?))", (tag, size))
    return tag


def _tags(db: SqliteDatabase) -> set[str]:
    with db.read() as conn:
        return {row[0] for row in conn.execute(sa.text("SELECT tag FROM scratch"))}


async def test_a_full_disk_fails_writes_whole_and_reads_keep_working(tmp_path: Path) -> None:
    """Writes batched with reads in one loop turn: while the disk is full each write
    is refused with the 503 and none of its rows holds, the reads answer; freed, the
    same connection writes again."""
    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        db = SqliteDatabase(f"sqlite:///{disk / 'store.db'}", "NORMAL")
        await db.open()
        try:
            await db.run(_create_scratch, db)
            for n in range(20):
                await db.run(_insert, db, f"before-{n}", 2000)
            ballast = disk / "ballast"
            rounds = 4 if FULL else 2
            for round_ in range(rounds):
                fill(ballast)
                # Small rows and one bigger than the page cache (it spills mid-batch), with a
                # read in the same batch.
                sizes = [200, 200, 3_000_000, 200, 200]
                calls = [db.run(_insert, db, f"r{round_}-{i}", s) for i, s in enumerate(sizes)]
                outcomes = await asyncio.gather(db.run(_tags, db), *calls, return_exceptions=True)
                read, writes = outcomes[0], outcomes[1:]
                assert isinstance(read, set), read
                refused = [w for w in writes if isinstance(w, BaseException)]
                assert refused, "the disk is full, yet every write went through"
                for error in refused:
                    assert isinstance(error, StoreUnavailable), repr(error)
                    assert error.message == "the database cannot be written: disk full"
                tags = await db.run(_tags, db)
                for i, outcome in enumerate(writes):
                    tag = f"r{round_}-{i}"
                    # Acknowledged iff it holds: nothing half-written, nothing lost.
                    assert (tag in tags) == (outcome == tag), (tag, outcome)
                assert {f"before-{n}" for n in range(20)} <= tags
                ballast.unlink()
                assert await db.run(_insert, db, f"after-{round_}", 200) == f"after-{round_}"
            assert db.wal is not None and db.wal._thread is not None
            assert db.wal._thread.is_alive(), "the WAL checkpointer died on the full disk"
        finally:
            await db.close()
        checked = await asyncio.to_thread(run_doctor, disk / "store.db")
        assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_the_doctor_reads_a_database_on_a_read_only_file_system(tmp_path: Path) -> None:
    """Mounted read-only with nobody writing (so the remount is allowed): the doctor
    says so and still checks the database (its shared memory file is gone)."""
    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        db = SqliteDatabase(f"sqlite:///{disk / 'store.db'}", "NORMAL")
        await db.open()
        await db.close()
        remounted = await asyncio.to_thread(
            subprocess.run,
            ["mount", "-o", "remount,ro", str(disk)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert remounted.returncode == 0, remounted.stderr
        checked = await asyncio.to_thread(run_doctor, disk / "store.db")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "cannot be written: the file system is read-only" in checked.stdout, checked.stdout
    assert "quick_check: ok" in checked.stdout, checked.stdout
    assert "(the newest)" in checked.stdout, checked.stdout


# -- a real server on a disk that fills ------------------------------------------------

DISK_FLOW = """
id: disk
namespace: chaos.disk
tasks:
""" + "".join(
    f"""  - id: t{n}
    type: python
    function: flows_crash:nap
    kwargs: {{seconds: 0.15}}
"""
    for n in range(8)
)
FULL_MESSAGE = "the database cannot be written: disk full"
TERMINAL = {"COMPLETED", "CANCELLED", "FAILED", "TERMINATED", "WARNING", "TIMED_OUT"}


@dataclass
class Load:
    """What the test sent and what it was told."""

    http: httpx.AsyncClient
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable: list[str] = field(default_factory=list)  # 503s: "METHOD path"
    accepted: dict[str, str] = field(default_factory=dict)  # command id -> execution id
    executions: dict[str, str] = field(default_factory=dict)  # start key -> execution id
    refused: list[tuple[str, str, dict[str, Any], str]] = field(default_factory=list)

    async def send(self, path: str, body: dict[str, Any], key: str) -> httpx.Response:
        """POST with an Idempotency-Key; a 503 is recorded for a retry with the same key."""
        reply = await self.http.post(path, json=body, headers={"Idempotency-Key": key})
        self.statuses[reply.status_code] += 1
        assert reply.status_code < 500 or reply.status_code == 503, reply.text
        if reply.status_code == 503:
            assert reply.headers.get("Retry-After", "").isdigit(), reply.headers
            self.unavailable.append(f"POST {path}: {reply.json().get('detail')}")
            self.refused.append((path, key, body, reply.json().get("detail", "")))
        elif reply.status_code in (200, 202) and "command_id" in reply.json():
            self.accepted[reply.json()["command_id"]] = reply.json()["execution_id"]
        elif reply.status_code == 201:
            self.executions[key] = reply.json()["id"]
        return reply

    async def start(self) -> httpx.Response:
        body = {"namespace": "chaos.disk", "flow_id": "disk"}
        return await self.send("/api/v1/executions", body, f"start-{uuid.uuid4()}")

    async def control(self, execution_id: str, op: str) -> httpx.Response:
        body = {"reason": "disk chaos"} if op in ("pause", "cancel") else {}
        path = f"/api/v1/executions/{execution_id}/{op}"
        return await self.send(path, body, f"{op}-{uuid.uuid4()}")

    async def read(self, execution_id: str) -> None:
        """Reads answer whatever the disk does."""
        for path in (
            f"/api/v1/executions/{execution_id}",
            f"/api/v1/executions/{execution_id}/events",
        ):
            reply = await self.http.get(path)
            self.statuses[reply.status_code] += 1
            assert reply.status_code == 200, f"GET {path}: {reply.status_code} {reply.text}"

    async def retry_refused(self) -> None:
        """Send every refused request again, same key, until it is answered for good."""
        refused, self.refused = self.refused, []
        for path, key, body, _ in refused:
            for _ in range(100):
                reply = await self.send(path, body, key)
                if reply.status_code != 503:
                    break
                self.refused.pop()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"POST {path} still refused after the disk was freed")


async def events_of(http: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        reply = await http.get(
            f"/api/v1/executions/{execution_id}/events", params={"after": after, "limit": 1000}
        )
        assert reply.status_code == 200, reply.text
        page = reply.json()
        events.extend(page["items"])
        if page["next_after"] is None:
            return events
        after = page["next_after"]


async def drain(server: ServerProcess) -> str:
    """Read the server's output as it comes (a pipe nobody reads fills, and the server's
    next log line would block it); all of it once the server is gone."""
    assert server.process.stdout is not None
    async for line in server.process.stdout:
        server.output.append(line.decode())
    return "".join(server.output)


# An exception in a traceback the server logged: its type and message.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Unavailable)): (.*)$")


def unexpected_errors(log: str, message: str) -> list[str]:
    """Exceptions in the server's log other than the outage itself (the driver's error
    and the 503 it became): a loop may log those while it waits, nothing else."""
    return [
        line
        for line in log.splitlines()
        if (found := _EXCEPTION_LINE.match(line))
        and not (
            found.group(1) == "pausepoint.errors.StoreUnavailable" and found.group(2) == message
        )
        and found.group(1) != "sqlite3.OperationalError"
    ]


def run_doctor(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pausepoint", "--db", str(db), "doctor"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=60,
    )


async def fault_round(
    load: Load, ids: list[str], ballast: Path, db: Path, rng: random.Random
) -> int:
    """Fill the disk under load until writes are refused; check reads, the doctor; free it."""
    await asyncio.to_thread(fill, ballast)
    refused_before = len(load.unavailable)
    for _ in range(400):  # the log has room left in its file: a few writes may still fit
        if len(load.unavailable) - refused_before >= 3:
            break
        await load.start()
        for execution_id in rng.sample(ids, min(3, len(ids))):
            await load.control(execution_id, rng.choice(["pause", "resume", "cancel", "pause"]))
    refused = load.unavailable[refused_before:]
    assert len(refused) >= 3, "the disk is full, yet no write was refused"
    assert all(FULL_MESSAGE in line for line in refused), refused
    for execution_id in ids:  # every read still answers
        await load.read(execution_id)
    doctor = await asyncio.to_thread(run_doctor, db)
    assert doctor.returncode == 1 and "disk full" in doctor.stdout, doctor.stdout + doctor.stderr
    await asyncio.to_thread(ballast.unlink)
    await load.retry_refused()
    return len(refused)


def disk_flows(tmp_path: Path) -> Path:
    """The flows a fault test's server loads: DISK_FLOW and the python module it calls."""
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(HERE / "flows_crash.py", flows / "flows_crash.py")
    (flows / "disk.yaml").write_text(DISK_FLOW)
    return flows


async def under_way(load: Load) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    """Executions the fault will meet, every second one paused: their ids, and their
    events as read before the fault (which must not change)."""
    for _ in range(12 if FULL else 6):
        assert (await load.start()).status_code == 201
    ids = list(load.executions.values())
    for execution_id in ids[::2]:
        await load.control(execution_id, "pause")
    return ids, {e: await events_of(load.http, e) for e in ids}


async def test_a_server_on_a_disk_that_fills_answers_503_and_continues(tmp_path: Path) -> None:
    """A real ``pausepoint server`` with its database on a small tmpfs, under load: the
    disk fills (writes 503 with Retry-After, reads answer, no other 5xx), is freed (the
    same process carries on); every acknowledged command is applied exactly once, no
    event is lost or changed, and every execution ends."""
    flows = disk_flows(tmp_path)
    rng = random.Random(20)
    rounds = 10 if FULL else 2
    with small_tmpfs(tmp_path / "disk", "24m") as disk:
        db = disk / "server.db"
        async with server_process(db, flows, free_port()) as server:
            api_key = (await server.read_until(KEY)).group(0)
            draining = asyncio.create_task(drain(server))
            await wait_healthy(server.base_url)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"X-API-Key": api_key}, timeout=30
            ) as http:
                load = Load(http)
                ids, before = await under_way(load)
                refused = 0
                for _ in range(rounds):
                    refused += await fault_round(load, ids, disk / "ballast", db, rng)
                    ids = list(load.executions.values())
                await finish_everything(load, ids)
                await check_outcome(load, ids, before)
                assert set(load.statuses) <= {200, 201, 202, 409, 503}, load.statuses
                assert load.statuses[503] >= refused
                doctor = await asyncio.to_thread(run_doctor, db)
                assert doctor.returncode == 0, doctor.stdout + doctor.stderr
            assert server.process.returncode is None, "the server exited during the outage"
        log = await draining
        assert not unexpected_errors(log, FULL_MESSAGE), log
        print(
            f"disk full {rounds} times: {dict(load.statuses)} replies, {len(load.accepted)} "
            f"commands acknowledged, {len(ids)} executions"
        )


async def finish_everything(load: Load, ids: list[str]) -> None:
    """Resume what is paused until every execution has ended."""

    async def ended() -> bool:
        done = True
        for execution_id in ids:
            reply = await load.http.get(f"/api/v1/executions/{execution_id}/state")
            assert reply.status_code == 200, reply.text
            state = reply.json()["state"]
            if state == "PAUSED":
                await load.control(execution_id, "resume")
            done = done and state in TERMINAL
        return done

    await assert_eventually(ended, timeout=60, interval=0.2, what="every execution to end")


async def check_outcome(
    load: Load, ids: list[str], before: dict[str, list[dict[str, Any]]]
) -> None:
    http = load.http
    assert len(set(load.executions.values())) == len(load.executions), "a start ran twice"
    listed = await http.get("/api/v1/executions", params={"namespace": "chaos.disk", "limit": 500})
    assert {item["id"] for item in listed.json()["items"]} == set(ids), "a start lost or doubled"
    for execution_id in ids:
        audit = (await http.get(f"/api/v1/executions/{execution_id}/audit")).json()
        recorded = Counter(c["id"] for c in audit)
        keys = Counter(c["idempotency_key"] for c in audit if c["idempotency_key"])
        assert all(n == 1 for n in recorded.values()), recorded
        assert all(n == 1 for n in keys.values()), f"an Idempotency-Key applied twice: {keys}"
        assert not [c for c in audit if c["status"] == "pending"], audit
        mine = {c for c, e in load.accepted.items() if e == execution_id}
        assert mine <= set(recorded), f"acknowledged commands lost: {mine - set(recorded)}"
        events = await events_of(http, execution_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "a gap in events"
        earlier = before.get(execution_id, [])
        assert events[: len(earlier)] == earlier, "an event recorded before the fault changed"
        state = (await http.get(f"/api/v1/executions/{execution_id}/state")).json()["state"]
        cancelled = any(c["kind"] == "cancel" and c["status"] == "applied" for c in audit)
        assert state == ("CANCELLED" if cancelled else "COMPLETED"), (state, audit)


# -- a file system that turns read-only ------------------------------------------------

READ_ONLY_MESSAGE = "the database cannot be written: the file system is read-only"


@dataclass
class LoopDisk:
    """An ext4 file system on a loop device, mounted ``errors=remount-ro``."""

    image: Path
    device: str
    where: Path

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)

    def turn_read_only(self) -> str:
        """Make the file system read-only under the running server; how it was done.

        ``mount -o remount,ro`` is refused (EBUSY) while a process holds a file there
        open for writing, as a server does: Linux turns a file system in use read-only
        only itself, after an error. So an error is raised in ext4 (its sysfs
        ``trigger_fs_error``), which remounts it read-only as ``errors=remount-ro`` says.
        """
        if self._run("mount", "-o", "remount,ro", str(self.where)).returncode == 0:
            return "mount -o remount,ro"
        trigger = Path(f"/sys/fs/ext4/{Path(self.device).name}/trigger_fs_error")
        trigger.write_text("pausepoint chaos test: read-only now")
        return "ext4 errors=remount-ro (trigger_fs_error)"

    def make_writable(self, how: str) -> None:
        """Writable again: remount rw, or (after an ext4 error, which only an unmount
        clears) unmount, e2fsck and mount again; the server must be stopped for that."""
        if how.startswith("mount"):
            done = self._run("mount", "-o", "remount,rw", str(self.where))
            assert done.returncode == 0, done.stderr
            return
        done = self._run("umount", str(self.where))
        assert done.returncode == 0, done.stderr
        checked = self._run("e2fsck", "-fy", self.device)
        assert checked.returncode in (0, 1), checked.stdout + checked.stderr  # 1: fixed
        done = self._run("mount", "-o", "errors=remount-ro", self.device, str(self.where))
        assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def ext4_on_loop(tmp_path: Path, size: int = 96 * 1024 * 1024) -> Iterator[LoopDisk]:
    if os.geteuid() != 0:
        pytest.skip("a loop device and a mount need root")
    missing = [t for t in ("losetup", "mkfs.ext4", "e2fsck", "mount") if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing {', '.join(missing)}")
    image = tmp_path / "ext4.img"
    with image.open("wb") as out:
        out.truncate(size)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, check=False)
    assert made.returncode == 0, made.stderr
    attached = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=False
    )
    if attached.returncode != 0:
        pytest.skip(f"no loop device here: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    where = tmp_path / "ext4"
    where.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-o", "errors=remount-ro", device, str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount ext4 on {device}: {mounted.stderr.strip()}")
        if not Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").exists():
            pytest.skip("this kernel's ext4 has no trigger_fs_error")
        yield LoopDisk(image, device, where)
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
        subprocess.run(["losetup", "-d", device], capture_output=True, check=False)


async def test_a_server_on_a_file_system_turned_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file system under a running server turns read-only: writes 503 naming it,
    reads answer, no other 5xx. Writable again, every acknowledged command is applied
    exactly once, no event is lost or changed, and every execution ends.

    ``synchronous=FULL``: a file system that dies loses what was written to it but
    not yet synced, as a power cut does; NORMAL (the default) syncs the log only at
    checkpoints, so the last acknowledged commits would go with it."""
    monkeypatch.setenv("PAUSEPOINT_SQLITE_SYNCHRONOUS", "FULL")
    flows = disk_flows(tmp_path)
    rng = random.Random(21)
    port = free_port()
    with ext4_on_loop(tmp_path) as disk:
        db = disk.where / "server.db"
        async with server_process(db, flows, port) as server:
            api_key = (await server.read_until(KEY)).group(0)
            draining = asyncio.create_task(drain(server))
            await wait_healthy(server.base_url)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"X-API-Key": api_key}, timeout=30
            ) as http:
                load = Load(http)
                ids, before = await under_way(load)
                how = await asyncio.to_thread(disk.turn_read_only)
                for _ in range(200):
                    if len(load.unavailable) >= 3:
                        break
                    await load.start()
                    for execution_id in rng.sample(ids, 3):
                        await load.control(execution_id, rng.choice(["pause", "resume", "cancel"]))
                assert len(load.unavailable) >= 3, "read-only, yet no write was refused"
                assert all(READ_ONLY_MESSAGE in line for line in load.unavailable), load.unavailable
                for execution_id in ids:
                    await load.read(execution_id)
                doctor = await asyncio.to_thread(run_doctor, db)
                assert doctor.returncode == 1 and "read-only" in doctor.stdout, doctor.stdout
                if how.startswith("mount"):
                    await asyncio.to_thread(disk.make_writable, how)
                    await continue_after_fault(load, before, db)
            assert server.process.returncode is None, "the server exited during the outage"
        if not how.startswith("mount"):  # ext4 clears its error only when unmounted
            await asyncio.to_thread(disk.make_writable, how)
            async with server_process(db, flows, port) as second:
                draining_second = asyncio.create_task(drain(second))
                await wait_healthy(second.base_url)
                async with httpx.AsyncClient(
                    base_url=second.base_url, headers={"X-API-Key": api_key}, timeout=30
                ) as http:
                    load.http = http
                    await continue_after_fault(load, before, db)
            assert not unexpected_errors(await draining_second, READ_ONLY_MESSAGE)
        assert not unexpected_errors(await draining, READ_ONLY_MESSAGE)
        print(
            f"read-only by {how}: {dict(load.statuses)} replies, {len(load.accepted)} "
            f"commands acknowledged, {len(load.executions)} executions"
        )


async def continue_after_fault(
    load: Load, before: dict[str, list[dict[str, Any]]], db: Path
) -> None:
    """Writable again: the refused requests, sent again, go through; everything ends
    as the acknowledged commands say, and the doctor finds the database healthy."""
    await load.retry_refused()
    ids = list(load.executions.values())
    await finish_everything(load, ids)
    await check_outcome(load, ids, before)
    assert set(load.statuses) <= {200, 201, 202, 409, 503}, load.statuses
    doctor = await asyncio.to_thread(run_doctor, db)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
