"""Temporal goes away and comes back: its dev server SIGKILLed under load and restarted.

Real processes on one PostgreSQL database: an API server (``pausepoint server
--runtime temporal``), two ``pausepoint worker`` processes and a Temporal dev
server of this test's own, on a database file, so that a restart on the same
file and port finds every workflow, timer and signal it had. Executions of
several kinds run (python steps, timed Pause tasks, an approval, parallel
branches) while two senders send random control requests over HTTP; then
Temporal is killed, and while it is down the test goes on sending pauses,
resumes, injects, cancels, terminates and starts (with Idempotency-Keys;
a 503 would be retried after its Retry-After, as a careful client does), and
reads. Temporal is restarted on the same file, and the storm goes on.

What was found, and is what the runtime now relies on: the SDK's worker
retries its polls and carries on once the frontend is back, so the worker
processes keep their PIDs; the API server's client retries each call for many
seconds, so the runtime bounds a send (``temporal_send_timeout``), records
the command first and leaves it to the sweep, and stops trying on requests
while Temporal is known to be away (replies come from PostgreSQL at once).

After the last outage everything is let finish, and the verdict is the crash
storm's (tests/chaos/checks.py): every execution terminal in the state its
history calls for; every accepted command applied or refused exactly once;
every start made exactly one execution; recorded results unchanged and each
from a real run of its task's body (a body may run again after an outage:
:func:`check_bodies_ran`); event sequences gap-free; no reply 5xx other than
503; no process restarted; no workflow left running on Temporal.

The normal suite kills Temporal once; ``PAUSEPOINT_CHAOS_FULL=1`` (``make
soak``) kills it 10 times, with longer outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from pausepoint.runtime.temporal import TemporalRuntime
from pausepoint.runtime.temporal.devserver import dev_server_command
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually
from tests.api.conftest import free_port
from tests.chaos.checks import (
    History,
)
from tests.chaos.flows import NAMESPACE, FlowSpec, approval, parallel, sequential, timed_pause
from tests.temporal.chaos_support import (
    Cluster,
    no_workflow_left,
)
from tests.temporal.conftest import STARTUP_SECONDS, reachable, temporal_settings
from tests.temporal.test_chaos import Plan, Storm

pytestmark = pytest.mark.chaos

FULL = os.environ.get("PAUSEPOINT_CHAOS_FULL") == "1"
# Seconds a send may take before the API server answers without it: short here, so
# that the first requests after a kill find out quickly that Temporal is away.
SEND_TIMEOUT = 1.0


@dataclass(frozen=True)
class OutagePlan:
    executions: int
    outages: int
    down_seconds: tuple[float, float]  # each outage lasts a random time in this range
    up_seconds: tuple[float, float]  # ... and so does the load between two outages
    settle_timeout: float


QUICK = OutagePlan(
    executions=16, outages=1, down_seconds=(4.0, 6.0), up_seconds=(1.5, 2.5), settle_timeout=60.0
)
LONG = OutagePlan(
    executions=120,
    outages=10,
    down_seconds=(5.0, 30.0),
    up_seconds=(3.0, 10.0),
    settle_timeout=300.0,
)


def outage_flows() -> list[FlowSpec]:
    """The crash storm's flows but the agent: what an outage stops is Temporal, not a model."""
    return [
        sequential(5),
        sequential(12),
        timed_pause("RESUME", "PT3S"),
        timed_pause("CANCEL", "PT4S"),
        approval(),
        parallel(),
    ]


class DevServer:
    """A Temporal dev server on a database file of its own, killed and restarted by the test."""

    def __init__(self, db_file: Path) -> None:
        port = free_port()
        self.command = dev_server_command(
            port, http_port=free_port(), db_filename=str(db_file), log_level="error"
        )
        self.address = f"127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start it (on the same file and port as before) and wait until it answers."""
        process = self._spawn()

        async def answers() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the Temporal dev server exited with {process.returncode}")
            return await reachable(self.address)

        await assert_eventually(
            answers, timeout=STARTUP_SECONDS, interval=0.1, what="the Temporal dev server"
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        return self.process

    async def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as a crashed frontend."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.process.wait)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 10)
            except subprocess.TimeoutExpired:
                await self.kill()


def check_bodies_ran(history: History) -> list[str]:
    """Every completed python task's recorded result came from a run of its body.

    Unlike a worker's death, Temporal's may hand out a task again with the same
    attempt number (the record that it was handed out died with the server), so
    a body may run twice even in a worker that lived: at least once is the
    contract for task bodies. What must hold is exactly once for the results:
    the recorded one is a real run's, and it never changed (the other checks).
    """
    problems = []
    completed = {
        e.data["task_run_id"]: e.data.get("outputs") or {}
        for e in history.events
        if e.type == "task.completed"
    }
    for run in history.view.task_runs:
        if run.type != "python" or run.id not in completed:
            continue
        bodies = history.bodies.get(f"{history.view.id}/{run.id}", [])
        token = completed[run.id].get("token")
        if token not in {body.token for body in bodies}:
            problems.append(
                f"{run.id}/{run.task_id}: the recorded result (token {token}) is from no run "
                f"of its body ({len(bodies)} runs)"
            )
    return problems


@contextlib.asynccontextmanager
async def dev_server(workdir: Path) -> AsyncIterator[DevServer]:
    server = DevServer(workdir / "temporal.db")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass(frozen=True)
class OutageCluster(Cluster):
    def env(self) -> dict[str, str]:
        env = super().env()
        env["PAUSEPOINT_TEMPORAL_SEND_TIMEOUT"] = str(SEND_TIMEOUT)
        return env


@dataclass
class OutageStorm(Storm):
    """The crash storm's client, whose faults are Temporal's outages instead of kills."""

    temporal: DevServer | None = None
    down: bool = False
    unavailable: int = 0  # 503 replies (each retried)
    accepted_while_down: Counter[str] = field(default_factory=Counter)
    slowest_while_down: float = 0.0  # seconds, the slowest reply while Temporal was down
    booted_pids: list[int] = field(default_factory=list)

    async def post(
        self, kind: str, path: str, body: dict[str, Any], execution_id: str | None, key: str | None
    ) -> httpx.Response | None:
        """As the storm's, but a 503 is waited out (its Retry-After) and sent again, same key."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            sent_at, down = loop.time(), self.down
            reply = await super().post(kind, path, body, execution_id, key)
            if down:
                self.slowest_while_down = max(self.slowest_while_down, loop.time() - sent_at)
            if reply is None or reply.status_code != 503 or loop.time() > deadline:
                break
            self.unavailable += 1
            retry_after = reply.headers.get("Retry-After")
            if retry_after is None:
                self.problems.append(f"{kind} {path}: 503 without Retry-After: {reply.text}")
                break
            await asyncio.sleep(min(float(retry_after), 2.0))
        if self.down and reply is not None and reply.status_code in (200, 201, 202):
            self.accepted_while_down[kind] += 1
        return reply

    async def outage(self, seconds: float) -> None:
        """Kill Temporal, keep sending for ``seconds`` (starts among them), restart it."""
        assert self.temporal is not None
        self.check_alive()
        await self.temporal.kill()
        self.down = True
        self.kills["temporal"] += 1
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        await self.start_execution()  # a start accepted while Temporal is away, for sure
        while loop.time() < until:
            await asyncio.sleep(self.rng.uniform(0.3, 1.0))
            if self.started < self.plan.executions and self.rng.random() < 0.3:
                await self.start_execution()
        self.check_alive()  # the processes outlived the outage ...
        await self.temporal.start()
        self.down = False

    async def outages(self, plan: OutagePlan) -> None:
        """Commands from two senders throughout, and ``plan.outages`` outages."""
        stop = asyncio.Event()
        senders = [asyncio.create_task(self.commands_until(stop)) for _ in range(2)]
        try:
            for _ in range(plan.outages):
                await asyncio.sleep(self.rng.uniform(*plan.up_seconds))
                await self.outage(self.rng.uniform(*plan.down_seconds))
                for sender in senders:
                    if sender.done():
                        sender.result()  # a sender that failed says why
            await asyncio.sleep(self.rng.uniform(*plan.up_seconds))
        finally:
            stop.set()
            await asyncio.gather(*senders, return_exceptions=True)
        for sender in senders:
            sender.result()
        while self.started < self.plan.executions:
            await self.start_execution()

    def body_checks(self, history: History) -> list[str]:
        """Not the crash storm's "ran again only where a worker died": see
        :func:`check_bodies_ran`."""
        return check_bodies_ran(history)

    def same_processes(self) -> list[str]:
        """... and the ones alive at the end are the ones booted: none had to be restarted."""
        now = [p.pid for p in self.processes if p.alive]
        if now != self.booted_pids or len(self.processes) != len(self.booted_pids):
            return [f"processes booted {self.booted_pids}, alive at the end {now}"]
        return []


async def run_outages(plan: OutagePlan, workdir: Path, db_url: str) -> None:
    seed = int(os.environ.get("PAUSEPOINT_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"outage seed {seed} (PAUSEPOINT_CHAOS_SEED={seed} replays its choices)")
    rng = random.Random(seed)
    specs = outage_flows()
    async with dev_server(workdir) as temporal:
        cluster = OutageCluster(
            db_url=db_url,
            temporal_address=temporal.address,
            task_queue=f"outage-{uuid.uuid4().hex[:12]}",
            port=free_port(),
            workdir=workdir,
            secrets_key=Fernet.generate_key().decode(),
        )
        storm_plan = Plan(plan.executions, crashes=0, settle_timeout=plan.settle_timeout)
        async with httpx.AsyncClient(base_url=cluster.base_url, timeout=30) as http:
            storm = OutageStorm(cluster, http, rng, specs, storm_plan, temporal=temporal)
            try:
                key = await storm.boot()
                storm.booted_pids = [p.pid for p in storm.processes]
                http.headers["X-API-Key"] = key
                for spec in specs:
                    reply = await http.put(
                        f"/api/v1/flows/{NAMESPACE}/{spec.flow_id}",
                        content=spec.source,
                        headers={"Content-Type": "application/x-yaml"},
                    )
                    assert reply.status_code == 201, reply.text
                for _ in range(plan.executions // 2):
                    await storm.start_execution()
                await storm.outages(plan)
                still_open = await storm.settle()
                await storm.resolve_doubts()
                problems = await storm.verdict(still_open)
                problems += storm.same_processes()
                if not still_open:
                    left = await no_workflow_left(temporal.address, cluster.task_queue)
                    if left:
                        problems.append(f"workflows still running on Temporal: {left}")
                states = Counter(s["state"] for s in await storm.api.executions())
            except BaseException as error:
                error.add_note(f"outage seed {seed}; files in {workdir}\n{storm.logs()}")
                raise
            finally:
                await storm.stop_all()
                storm.write_index()
    summary = (
        f"{storm.summary(states)}; accepted while Temporal was down "
        f"{dict(storm.accepted_while_down)} (slowest reply then "
        f"{storm.slowest_while_down:.2f}s), 503 replies {storm.unavailable}"
    )
    print(summary)
    if problems:
        shown = "\n".join(f"- {p}" for p in problems[:60])
        pytest.fail(
            f"outage seed {seed}: {len(problems)} invariant violations after {summary}\n{shown}\n"
            f"logs in {workdir}",
            pytrace=False,
        )


HELLO_FLOW = """
id: hello
namespace: outage
tasks:
  - id: greet
    type: return
    format: "hello"
"""


async def test_a_worker_started_while_temporal_is_away_polls_once_it_is_back(
    tmp_path: Path, postgres_url: str
) -> None:
    """The SDK worker gives up on its own (it cannot describe the namespace at start, after
    some 20 s of retries); :class:`ExecutionWorker` keeps its host and starts another, which
    runs the execution accepted meanwhile once Temporal is back."""
    async with dev_server(tmp_path) as temporal:
        settings = temporal_settings(
            postgres_url, temporal.address, temporal_send_timeout=SEND_TIMEOUT
        )
        async with Engine(settings, serve=True) as control, Engine(settings) as host:
            runtime = host.runtime
            assert isinstance(runtime, TemporalRuntime)
            await control.put_flow(HELLO_FLOW)
            await temporal.kill()
            async with runtime.worker() as worker:
                execution = await control.start_execution("outage", "hello")
                assert execution.state == "QUEUED"  # recorded; Temporal hears of it later

                async def gave_up() -> bool:
                    return worker.stopped >= 1

                await assert_eventually(gave_up, timeout=90, what="the SDK worker giving up")
                await temporal.start()
                view = await control.wait(execution.id, timeout=60)
                assert worker.polling and worker.restarts >= 1
            events = await control.events(execution.id)

    assert view.state == "COMPLETED"
    assert view.task_run("greet").outputs == {"value": "hello"}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events].count("workflow.started") == 1


@pytest.mark.timeout(150)
async def test_commands_accepted_while_temporal_is_down_apply_once_it_is_back(
    tmp_path: Path, postgres_url: str
) -> None:
    await run_outages(QUICK, tmp_path, postgres_url)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not FULL, reason="set PAUSEPOINT_CHAOS_FULL=1 for ten outages")
async def test_ten_temporal_outages_under_load_lose_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    await run_outages(LONG, tmp_path, postgres_url)
