"""Crash recovery under a storm of SIGKILLs.

A worker subprocess serves many executions and the HTTP API while the test
sends random control commands, most over HTTP to the worker and the rest as a
second control-plane process would (its own ``Engine`` on the same database,
``run_executions=False``), which is also how commands arrive while no worker
is alive. An agent mid-turn against the test model server is among the
executions. The worker is SIGKILLed at random moments (mid-step, while executions are paused, right
after commands were accepted but before they could be applied, while Pause
timers fall due) and replaced. After the storm a last worker finishes
everything, and every execution must have reached the state its history
calls for: no accepted command lost or applied twice, no recorded result
changed, no gap in any event log, task bodies re-run only when the process
running them died.

Quick mode (default) runs in the normal suite; ``PAUSEPOINT_CHAOS_FULL=1``
enables the long one. ``PAUSEPOINT_CHAOS_SEED`` replays a seed's choices (the
kill timing itself is never exactly reproducible).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from pausepoint.config import Settings
from pausepoint.engine.interpreter import iso
from pausepoint.errors import Conflict, InvalidInput
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.service.requests import (
    CancelRequest,
    ControlRequest,
    InjectRequest,
    PauseRequest,
    ResumeRequest,
    TerminateRequest,
)
from tests.agents.model_server import ModelServer, Reply, model_server, tool_call, turn_of
from tests.api.conftest import free_port
from tests.chaos.checks import Accepted, History, check_history, read_run_log
from tests.chaos.flows import AGENT_TOOL_CALLS, NAMESPACE, FlowSpec, all_flows
from tests.chaos.worker import CHAOS_DIR
from tests.chaos.workers import WorkerProcess, start_worker

TERMINAL = {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}
FULL = os.environ.get("PAUSEPOINT_CHAOS_FULL") == "1"
ROLES: tuple[Literal["user", "system"], ...] = ("user", "system")


@dataclass(frozen=True)
class Plan:
    executions: int
    crashes: int
    settle_timeout: float  # seconds the last worker gets to finish everything
    stall_timeout: float = 8.0  # ... or to make any progress at all


QUICK_PLAN = Plan(executions=60, crashes=5, settle_timeout=60.0)
FULL_PLAN = Plan(executions=300, crashes=20, settle_timeout=300.0)

# Relative weights of the random control operations during the storm.
OPERATIONS = {"pause": 25, "resume": 30, "inject": 18, "cancel": 5, "terminate": 3, "replay": 7}
HTTP_SHARE = 0.7  # of commands sent over HTTP while a worker serves it


def agent_replies(request: dict[str, Any]) -> Reply:
    """The chaos agent's model: ``AGENT_TOOL_CALLS`` turns that call ``step``, then an answer.

    Chosen by turn, so a call sent again after a kill gets the same reply; the
    delay makes kills land while a call is in flight.
    """
    turn = turn_of(request)
    delay = 0.05 + (turn * 37 % 11) / 40
    if turn <= AGENT_TOOL_CALLS:
        return Reply("", [tool_call(f"call-{turn}", "step", label=f"tool{turn}", ms=15)], delay)
    return Reply("the chain is long enough", delay=delay)


def client_settings(db_path: Path) -> Settings:
    # The flows are saved through this engine, and saving checks their functions against
    # what the settings allow: the workers' python_paths.
    return Settings(
        db=f"sqlite:///{db_path}",
        python_paths=(str(CHAOS_DIR),),
        poll_interval=0.05,
        lease_ttl=1.0,
        lease_renew_interval=0.25,
        command_wait_timeout=0.5,
    )


class Storm:
    """The client side of one storm: executions, commands sent, workers killed."""

    def __init__(
        self,
        client: Engine,
        rng: random.Random,
        workdir: Path,
        model: ModelServer,
        http: httpx.AsyncClient,
    ) -> None:
        self.client = client
        self.rng = rng
        self.workdir = workdir
        self.model = model
        self.http = http  # carries an operator's API key
        self.db_url = client.settings.db
        self.run_log = workdir / "task-bodies.jsonl"
        self.executions: dict[str, tuple[FlowSpec, dict[str, Any]]] = {}
        self.accepted: dict[str, list[Accepted]] = {}
        self.requests: list[tuple[ControlRequest, str]] = []  # with idempotency keys
        self.workers: list[WorkerProcess] = []
        self.killed: set[int] = set()
        self.refused = 0
        self.by_http = 0
        self.doubted = 0  # HTTP requests a killed worker never answered
        self.in_flight: set[asyncio.Task[None]] = set()  # HTTP requests not answered yet
        self.in_doubt: list[ControlRequest] = []  # sent over HTTP to a worker that died
        self.problems: list[str] = []
        self.coverage = ""

    # -- setup -------------------------------------------------------------------

    async def create_executions(self, count: int) -> None:
        specs = all_flows(self.model.url)
        for spec in specs:
            await self.client.put_flow(spec.source, source_name=f"{spec.flow_id}.yaml")
        for i in range(count):
            spec = specs[i % len(specs)]
            inputs = {"fail": self.rng.random() < 0.4} if spec.kind == "finally" else {}
            view = await self.client.start_execution(NAMESPACE, spec.flow_id, inputs=inputs)
            self.executions[view.id] = (spec, inputs)
            self.accepted[view.id] = []

    # -- workers -----------------------------------------------------------------

    async def spawn_worker(self) -> WorkerProcess:
        log_path = self.workdir / f"worker-{len(self.workers) + 1}.stderr"
        worker = start_worker(self.db_url, self.run_log, log_path, port=free_port())
        self.workers.append(worker)
        await worker.wait_ready()
        return worker

    async def crash(self, worker: WorkerProcess) -> None:
        if not worker.alive:
            raise AssertionError(f"worker {worker.pid} died on its own\n{worker.log_tail()}")
        self.killed.add(worker.pid)
        await worker.kill()
        await self.answers_settled()

    async def answers_settled(self) -> None:
        """Wait for every HTTP request in flight; send again those a killed worker never
        answered, with the same Idempotency-Key, through the other control plane: what
        a client does when its server dies mid-request. A command the dead worker
        accepted comes back as the same command, one it never saw is accepted now."""
        while self.in_flight:
            await asyncio.gather(*self.in_flight)
        doubts, self.in_doubt = self.in_doubt, []
        self.doubted += len(doubts)
        for request in doubts:
            await self.send_direct(request)

    async def kill_all(self) -> None:
        for worker in self.workers:
            await worker.kill()

    def worker_logs(self) -> str:
        return "\n".join(worker.log_tail() for worker in self.workers[-3:])

    # -- commands ----------------------------------------------------------------

    def serving_worker(self) -> WorkerProcess | None:
        worker = self.workers[-1] if self.workers else None
        return worker if worker is not None and worker.alive else None

    async def send(self, request: ControlRequest) -> None:
        """Send one command, mostly over HTTP to the live worker (without waiting for the
        reply: the storm goes on while the worker waits for the command to apply)."""
        worker = self.serving_worker()
        if worker is None or self.rng.random() >= HTTP_SHARE:
            await self.send_direct(request)
            return
        if request.idempotency_key is None:
            request = replace(request, idempotency_key=f"http-{uuid.uuid4().hex[:12]}")
        task = asyncio.create_task(self.send_http(worker, request))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def send_http(self, worker: WorkerProcess, request: ControlRequest) -> None:
        """POST the command; remember it if 202, count it if refused, doubt it if no answer."""
        body = request.payload()
        reason = getattr(request, "reason", None)
        if reason is not None:
            body["reason"] = reason
        assert request.idempotency_key is not None
        try:
            reply = await self.http.post(
                f"http://127.0.0.1:{worker.port}/api/v1/executions/"
                f"{request.execution_id}/{request.kind}",
                json=body,
                headers={"Idempotency-Key": request.idempotency_key},
            )
        except httpx.TransportError:
            self.in_doubt.append(request)  # the worker died with the request in its hands
            return
        if reply.status_code in (409, 422):
            self.refused += 1
        elif reply.status_code in (200, 202):  # terminate answers 200 once it applied
            self.by_http += 1
            self.remember(request, reply.json()["command_id"])
        else:
            self.problems.append(
                f"HTTP {request.kind} on {request.execution_id}: {reply.status_code} {reply.text}"
            )

    def remember(self, request: ControlRequest, command_id: str) -> None:
        self.accepted[request.execution_id].append(
            Accepted(command_id, request.kind, request.execution_id, request.payload())
        )
        if request.idempotency_key is not None:
            self.requests.append((request, command_id))

    async def send_direct(self, request: ControlRequest) -> None:
        """Send one command as a second control plane does; remember it if accepted."""
        try:
            result = await self.client.control(request)
        except (Conflict, InvalidInput):
            self.refused += 1
            return
        if result.replayed:
            # An earlier attempt (over HTTP, to a worker killed before it answered) was
            # accepted: the same command again, not a second one.
            known = {a.command_id for a in self.accepted[request.execution_id]}
            if result.command_id in known:
                return
        self.remember(request, result.command_id)

    async def replay(self) -> None:
        """Re-send an earlier request with its Idempotency-Key: same command, not a new one."""
        if not self.requests:
            return
        request, command_id = self.rng.choice(self.requests)
        result = await self.client.control(request)
        if not result.replayed or result.command_id != command_id:
            self.problems.append(
                f"replaying {request.kind} {command_id} on {request.execution_id} with "
                f"idempotency key {request.idempotency_key} gave {result}"
            )

    async def random_command(self) -> None:
        rng = self.rng
        execution_id = rng.choice(list(self.executions))
        operation = rng.choices(list(OPERATIONS), weights=list(OPERATIONS.values()))[0]
        key = f"key-{uuid.uuid4().hex[:12]}" if rng.random() < 0.5 else None
        common: dict[str, Any] = {
            "execution_id": execution_id,
            "idempotency_key": key,
            "wait": False,
            "actor": "chaos",
        }
        if operation == "replay":
            await self.replay()
        elif operation == "pause":
            await self.send(PauseRequest(reason="chaos pause", **common))
        elif operation == "inject":
            role = rng.choice(ROLES)
            message = f"chaos note {uuid.uuid4().hex}"
            await self.send(InjectRequest(message=message, role=role, **common))
        elif operation == "cancel":
            await self.send(CancelRequest(reason="chaos cancel", **common))
        elif operation == "terminate":
            await self.send(TerminateRequest(reason="chaos terminate", **common))
        else:
            paused = [
                r.id
                for r in await self.client.list_executions(
                    states=("PAUSED", "PAUSING"), namespace=NAMESPACE, limit=10_000
                )
            ]
            if paused and rng.random() < 0.8:
                common["execution_id"] = execution_id = rng.choice(paused)
            await self.send(await self.resume_request(execution_id, common))

    async def resume_request(self, execution_id: str, common: dict[str, Any]) -> ResumeRequest:
        """A resume of a random open pause point; sometimes with inputs it must refuse."""
        state = await self.client.state(execution_id)
        if not state.pause_points:
            return ResumeRequest(**common)  # nothing to resume: refused with 409
        point = self.rng.choice(state.pause_points)
        inputs: dict[str, Any] = {}
        schema = point.on_resume_schema or {}
        if "approved" in schema.get("properties", {}):
            if self.rng.random() < 0.2:
                inputs = {"approved": "perhaps"}  # not a BOOLEAN: refused with 422
            else:
                inputs = {"approved": self.rng.random() < 0.5, "note": uuid.uuid4().hex[:8]}
        pause_id = point.id if len(state.pause_points) > 1 or self.rng.random() < 0.5 else None
        return ResumeRequest(inputs=inputs, pause_id=pause_id, **common)

    async def commands_for(self, seconds: float) -> None:
        """Send random commands at random moments for ``seconds``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            # Random moments are the point: commands land anywhere relative to checkpoints.
            await asyncio.sleep(min(left, self.rng.uniform(0.005, 0.04)))
            await self.random_command()

    async def burst(self) -> None:
        """A few commands with no pause: the kill that follows lands before they apply."""
        for _ in range(self.rng.randint(1, 4)):
            await self.random_command()

    # -- the storm ---------------------------------------------------------------

    async def until_a_timer_falls_due(self, within: float) -> None:
        """Sleep until just after the next durable timer's deadline (if one is near)."""
        now = time.time()
        deadlines = [
            timer["deadline"]
            for record in await self.client.list_executions(namespace=NAMESPACE, limit=10_000)
            if record.status not in TERMINAL
            for timer in record.state.get("timers", {}).values()
            if now < timer["deadline"] < now + within
        ]
        if deadlines:
            await asyncio.sleep(min(deadlines) - now + self.rng.uniform(0.0, 0.03))

    async def rage(self, crashes: int) -> None:
        for _ in range(crashes):
            worker = await self.spawn_worker()
            await self.commands_for(self.rng.uniform(0.05, 0.6))
            if self.rng.random() < 0.3:
                await self.until_a_timer_falls_due(within=0.8)
            if self.rng.random() < 0.5:
                await self.burst()
            await self.crash(worker)
            if self.rng.random() < 0.3:
                await self.burst()  # accepted while no worker is alive at all

    async def settle(self, timeout: float, stall: float) -> dict[str, str]:
        """Resume everything waiting for a human until every execution is terminal.

        Gives up after ``timeout`` seconds, or after ``stall`` seconds in which
        no open execution logged an event; returns the executions left open.
        """
        worker = await self.spawn_worker()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        progress, progress_at = -1, loop.time()
        while True:
            records = await self.client.list_executions(namespace=NAMESPACE, limit=10_000)
            still_open = {r.id: r.status for r in records if r.status not in TERMINAL}
            if not still_open:
                await self.answers_settled()
                return {}
            if not worker.alive:
                raise AssertionError(f"the last worker died\n{worker.log_tail()}")
            now = loop.time()
            seen = sum(r.event_seq for r in records) + len(records) - len(still_open)
            if seen != progress:
                progress, progress_at = seen, now
            if now > deadline or now - progress_at > stall:
                return still_open
            for execution_id in still_open:
                await self.resume_waiting(execution_id)
            # Not assert_eventually: the end here is "no progress for `stall` seconds", and
            # what is still open then is the finding that the caller reports.
            await asyncio.sleep(0.2)

    async def resume_waiting(self, execution_id: str) -> None:
        state = await self.client.state(execution_id)
        for point in state.pause_points:
            if point.kind == "task" and point.deadline is not None:
                continue  # a timed Pause task: its timer decides
            inputs: dict[str, Any] = {}
            if "approved" in (point.on_resume_schema or {}).get("properties", {}):
                inputs = {"approved": True, "note": "settled"}
            await self.send(
                ResumeRequest(
                    execution_id=execution_id,
                    inputs=inputs,
                    pause_id=point.id,
                    wait=False,
                    actor="settler",
                )
            )

    # -- verdict -----------------------------------------------------------------

    async def histories(self) -> list[History]:
        bodies = read_run_log(self.run_log)
        histories = []
        for execution_id, (spec, inputs) in self.executions.items():
            view: ExecutionView = await self.client.execution(execution_id)
            events = await self.client.events(execution_id, limit=100_000)
            prefix = f"{execution_id}/"
            histories.append(
                History(
                    spec=spec,
                    inputs=inputs,
                    view=view,
                    events=events,
                    commands=await self.client.commands(execution_id),
                    accepted=self.accepted[execution_id],
                    bodies={k: v for k, v in bodies.items() if k.startswith(prefix)},
                )
            )
        return histories

    async def verdict(self, still_open: dict[str, str]) -> list[str]:
        await self.answers_settled()
        problems = list(self.problems)
        histories = await self.histories()
        self.note_coverage(histories)
        for history in histories:
            name = f"{history.view.id} ({history.spec.flow_id})"
            if history.view.id in still_open:
                problems.append(f"{name}: never finished: {describe_stuck(history)}")
                continue
            for problem in check_history(history, self.killed):
                problems.append(f"{name}: {problem}")
        for worker in self.workers:
            text = worker.log_text()
            if "Traceback" in text or "runtime error" in text:
                problems.append(f"worker {worker.pid} logged an error:\n{worker.log_tail(60)}")
        return problems

    def note_coverage(self, histories: list[History]) -> None:
        """What the storm actually exercised, for the summary line."""
        statuses = Counter(c.status for h in histories for c in h.commands)
        self.coverage = (
            f"commands {dict(statuses)}, "
            f"{sum(len(b) - 1 for h in histories for b in h.bodies.values())} task bodies re-run, "
            f"{sum(e.type == 'workflow.recovered' for h in histories for e in h.events)} "
            "recoveries with work in flight"
        )

    def summary(self, final_states: dict[str, int]) -> str:
        commands = sum(len(a) for a in self.accepted.values())
        return (
            f"{len(self.executions)} executions, {len(self.killed)} SIGKILLs, "
            f"{commands} commands accepted ({self.by_http} answered over HTTP, "
            f"{self.doubted} sent again after the worker died holding them), "
            f"{self.refused} refused; {len(self.model.requests)} model calls; final states "
            f"{dict(sorted(final_states.items()))}; {self.coverage}"
        )


def describe_stuck(history: History) -> str:
    view = history.view
    last = history.events[-1] if history.events else None
    points = [
        f"{p.id} ({p.kind}{', due ' + p.deadline if p.deadline else ''})" for p in view.pause_points
    ]
    pending = [f"{c.kind} {c.id}" for c in history.commands if c.status == "pending"]
    return (
        f"state {view.state}, open pause points {points}, pending commands {pending}, "
        f"last event #{last.seq} {last.type} at {last.at} (now {iso(time.time())})"
        if last
        else f"state {view.state}, no events, pending commands {pending}"
    )


async def run_storm(plan: Plan, workdir: Path) -> None:
    seed = int(os.environ.get("PAUSEPOINT_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed {seed} (PAUSEPOINT_CHAOS_SEED={seed} replays its choices)")
    rng = random.Random(seed)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            Engine(client_settings(workdir / "chaos.db"), run_executions=False)
        )
        model = stack.enter_context(model_server())
        model.script = agent_replies
        key, _ = await client.create_api_key("operator", "chaos storm")
        http = await stack.enter_async_context(
            httpx.AsyncClient(headers={"X-API-Key": key}, timeout=30)
        )
        storm = Storm(client, rng, workdir, model, http)
        try:
            await storm.create_executions(plan.executions)
            await storm.rage(plan.crashes)
            still_open = await storm.settle(plan.settle_timeout, plan.stall_timeout)
            problems = await storm.verdict(still_open)
        except BaseException as error:
            error.add_note(f"chaos seed {seed}; files in {workdir}\n{storm.worker_logs()}")
            raise
        finally:
            await storm.kill_all()
        states: dict[str, int] = {}
        for record in await client.list_executions(namespace=NAMESPACE, limit=10_000):
            states[record.status] = states.get(record.status, 0) + 1
        print(storm.summary(states))
        if problems:
            shown = "\n".join(f"- {p}" for p in problems[:60])
            more = f"\n… and {len(problems) - 60} more" if len(problems) > 60 else ""
            pytest.fail(
                f"chaos seed {seed}: {len(problems)} invariant violations after "
                f"{storm.summary(states)}\n{shown}{more}\n"
                f"database, task-body log and worker logs in {workdir}\n{storm.worker_logs()}",
                pytrace=False,
            )


async def test_every_execution_survives_a_storm_of_sigkills(tmp_path: Path) -> None:
    await run_storm(QUICK_PLAN, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not FULL, reason="set PAUSEPOINT_CHAOS_FULL=1 for the long storm")
async def test_every_execution_survives_a_long_storm_of_sigkills(tmp_path: Path) -> None:
    await run_storm(FULL_PLAN, tmp_path)
