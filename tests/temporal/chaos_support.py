"""The parts of the temporal+postgres crash storm that are not the storm itself.

- :class:`Cluster` and :class:`Process`: ``pausepoint server --runtime temporal``
  and ``pausepoint worker`` as real subprocesses on one PostgreSQL database and
  one task queue, started, SIGKILLed and restarted by the test.
- :class:`Api`: the HTTP reads the verdict needs (whole event logs, audits).
- Temporal and the store directly: workflows left running, their histories
  (written beside the logs when a storm fails), and :func:`write_lost_step`,
  the checkpoint a lost workflow task leaves behind.
- The model of the chaos agent (tests/chaos/flows.py) for tests/agents/model_server.py.
- The checks that differ from the embedded storm's (tests/chaos/checks.py):
  on Temporal a task body lost with its worker is retried by Temporal itself,
  not re-issued by a recovery step, so the body-run check is stated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from pausepoint.engine.interpreter import rebuild_outputs
from pausepoint.models import CommandView, EventView, ExecutionView
from pausepoint.runtime.actor import command_event, core_state
from pausepoint.runtime.temporal import workflow_id
from pausepoint.runtime.temporal.activities import LEASE_SECONDS
from pausepoint.runtime.temporal.messages import TEMPORAL_OWNER
from pausepoint.runtime.temporal.workflow import advance_all
from pausepoint.service.engine import Engine
from pausepoint.store.records import Checkpoint, EventRecord
from pausepoint.testing import assert_eventually
from tests.agents.model_server import Reply, tool_call, turn_of
from tests.chaos.checks import History
from tests.chaos.flows import AGENT_TOOL_CALLS, NAMESPACE
from tests.chaos.workers import WorkerProcess

REPO = Path(__file__).resolve().parents[2]
CHAOS_TASKS = REPO / "tests" / "chaos"
KEY = re.compile(r"\bpp_[A-Za-z0-9]+_[A-Za-z0-9_-]+")
WORKER_READY = re.compile(r"pausepoint worker: task queue")
START_TIMEOUT = 40.0  # two busy cores: importing temporalio and connecting takes a while
RUN_LOG_ENV = "CHAOS_RUN_LOG"  # read by tests/chaos/chaos_tasks.py

AGENT_ANSWER = "the chain is long enough"
# Long enough that a kill often lands while a model call is in flight.
MODEL_DELAY = 0.35


# -- processes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """What every process of one storm shares: database, Temporal, task queue, port."""

    db_url: str
    temporal_address: str
    task_queue: str
    port: int
    workdir: Path
    secrets_key: str
    heartbeat_timeout: float = 2.5
    terminate_after: float = 3.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def run_log(self) -> Path:
        return self.workdir / "task-bodies.jsonl"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PAUSEPOINT_")}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "COLUMNS": "400",  # rich must not wrap the admin key
                "PAUSEPOINT_SECRETS_KEY": self.secrets_key,
                "PAUSEPOINT_POLL_INTERVAL": "0.05",
                # Replies come back before the workflow applied the command: accepted,
                # durable, not yet applied is the state most kills then find them in.
                "PAUSEPOINT_COMMAND_WAIT_TIMEOUT": "0.2",
                "PAUSEPOINT_CANCEL_GRACE_PERIOD": "0.2",
                "PAUSEPOINT_SHUTDOWN_GRACE_PERIOD": "0",
                "PAUSEPOINT_TEMPORAL_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout),
                "PAUSEPOINT_TEMPORAL_SWEEP_INTERVAL": "0.25",
                "PAUSEPOINT_TEMPORAL_TERMINATE_AFTER": str(self.terminate_after),
                "PAUSEPOINT_PYTHON_PATHS": json.dumps([str(CHAOS_TASKS), str(REPO)]),
                RUN_LOG_ENV: str(self.run_log),
            }
        )
        return env

    def temporal_arguments(self) -> list[str]:
        return [
            "--db",
            self.db_url,
            "--temporal-address",
            self.temporal_address,
            "--task-queue",
            self.task_queue,
        ]


class Process(WorkerProcess):
    """One pausepoint subprocess (API server or worker); its output goes to ``log_path``."""

    def __init__(self, role: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        super().__init__(popen, log_path)
        self.role = role
        self.popen = popen

    def __repr__(self) -> str:
        return f"{self.role}[{self.pid}]"

    def log_tail(self, lines: int = 30) -> str:
        return super().log_tail(lines)

    async def wait_for_output(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        def said() -> re.Match[str] | None:
            found = pattern.search(self.log_text())
            if not found and not self.alive:
                pytest.fail(f"{self!r} exited before saying {pattern.pattern!r}\n{self.log_tail()}")
            return found

        try:
            return await assert_eventually(said, timeout=timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(
                f"{self!r} did not say {pattern.pattern!r} within {timeout}s\n{self.log_tail()}"
            ) from None


def _spawn(cluster: Cluster, role: str, arguments: list[str], name: str) -> Process:
    log_path = cluster.workdir / f"{name}.log"
    with log_path.open("wb") as output:
        popen = subprocess.Popen(
            [sys.executable, "-m", "pausepoint", *arguments],
            cwd=cluster.workdir,  # secrets key files and the like never land in the repo
            env=cluster.env(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Process(role, popen, log_path)


def start_server(cluster: Cluster, name: str) -> Process:
    """``pausepoint server --runtime temporal`` on the cluster's port (it records and forwards)."""
    arguments = ["server", "--runtime", "temporal", "--port", str(cluster.port)]
    return _spawn(cluster, "server", arguments + cluster.temporal_arguments(), name)


def start_worker(cluster: Cluster, name: str) -> Process:
    """``pausepoint worker``: runs workflows and task bodies from the cluster's task queue."""
    return _spawn(cluster, "worker", ["worker", *cluster.temporal_arguments()], name)


async def wait_healthy(server: Process, base_url: str, timeout: float = START_TIMEOUT) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:

        async def ready() -> bool:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/readyz")).status_code == 200:
                    return True
            if not server.alive:
                pytest.fail(f"{server!r} exited while starting\n{server.log_tail()}")
            return False

        try:
            await assert_eventually(ready, timeout=timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(
                f"{server!r} not ready within {timeout}s\n{server.log_tail()}"
            ) from None


@dataclass
class Doubt:
    """A request whose reply never came (the server died): it may or may not have been recorded.

    One with an Idempotency-Key is sent again until it gets a reply, as a careful
    client does; ``request_ids`` are the ids of every attempt, which the audit keeps.
    """

    kind: str  # a control operation, or "start"
    path: str
    execution_id: str | None
    body: dict[str, Any]
    key: str | None
    request_ids: list[str]
    reply: httpx.Response | None = None


# -- reading over HTTP ----------------------------------------------------------------


class Api:
    """Reads through the API server; waits out the moments it is down (being restarted)."""

    def __init__(self, http: httpx.AsyncClient, *, patience: float = 60.0) -> None:
        self.http = http
        self.patience = patience

    async def get(self, path: str, **params: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.patience
        while True:
            try:
                reply = await self.http.get(path, params=params)
            except httpx.TransportError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)  # a retry: the server may be down mid-storm
                continue
            if reply.status_code != 200:
                raise AssertionError(f"GET {path} {params}: {reply.status_code} {reply.text}")
            return reply.json()

    async def execution(self, execution_id: str) -> ExecutionView:
        return ExecutionView.model_validate(await self.get(f"/api/v1/executions/{execution_id}"))

    async def events(self, execution_id: str) -> list[EventView]:
        events: list[EventView] = []
        after = 0
        while True:
            page = await self.get(
                f"/api/v1/executions/{execution_id}/events", after=after, limit=1000
            )
            events += [EventView.model_validate(item) for item in page["items"]]
            if page["next_after"] is None:
                return events
            after = page["next_after"]

    async def audit(self, execution_id: str) -> list[CommandView]:
        items = await self.get(f"/api/v1/executions/{execution_id}/audit")
        return [CommandView.model_validate(item) for item in items]

    async def executions(self, *states: str) -> list[dict[str, Any]]:
        """Summaries of the storm's executions (all pages), optionally only in ``states``."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"namespace": NAMESPACE, "limit": 500}
        if states:
            params["state"] = list(states)
        while True:
            page = await self.get("/api/v1/executions", **params)
            found += page["items"]
            if page["next_cursor"] is None:
                return found
            params["cursor"] = page["next_cursor"]


# -- Temporal and the store, directly --------------------------------------------------


async def running_workflows(address: str, task_queue: str) -> list[str]:
    client = await Client.connect(address)
    query = f'TaskQueue="{task_queue}" AND ExecutionStatus="Running"'
    return [w.id async for w in client.list_workflows(query)]


async def no_workflow_left(address: str, task_queue: str, timeout: float = 20.0) -> list[str]:
    """Workflows of the storm still running on Temporal once every execution is terminal."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = await running_workflows(address, task_queue)
        if not left or loop.time() > deadline:
            return left  # what is left after the deadline is the caller's finding, not a failure
        await asyncio.sleep(0.5)


async def dump_workflows(address: str, execution_ids: list[str], workdir: Path) -> list[str]:
    """Write the Temporal histories of these executions' workflows beside the logs."""
    client = await Client.connect(address)
    written = []
    for execution_id in execution_ids:
        handle = client.get_workflow_handle(workflow_id(execution_id))
        try:
            history = await handle.fetch_history()
        except RPCError as error:
            written.append(f"{execution_id}: no history ({error})")
            continue
        path = workdir / f"history-{execution_id}.json"
        path.write_text(history.to_json())
        written.append(str(path))
    return written


async def write_lost_step(engine: Engine, execution_id: str, command_id: str) -> None:
    """Write the checkpoint a workflow task applying ``command_id`` wrote before it was lost.

    What a worker SIGKILLed right after its checkpoint leaves behind (or a workflow
    task failed because a signal arrived as it completed): the step is in the store,
    and Temporal, which never heard of it, runs the task again.
    """
    store = engine.store
    loaded = await store.claim_and_load(
        execution_id, TEMPORAL_OWNER, LEASE_SECONDS, time.time(), None
    )
    assert loaded is not None
    record = loaded.record
    state = dict(record.state)
    state["task_runs"] = {run["id"]: run for run in loaded.task_runs or ()}
    rebuild_outputs(state)
    (command,) = [c for c in loaded.pending if c.id == command_id]
    step = advance_all(state, [command_event(command)], await engine._env_for(record))
    events = [
        EventRecord(execution_id, record.event_seq + n + 1, e.type, e.at, e.data)
        for n, e in enumerate(step.events)
    ]
    written = await store.checkpoint(
        [
            Checkpoint(
                execution_id=execution_id,
                owner=TEMPORAL_OWNER,
                status=state["status"],
                state=core_state(state),
                started_at=state["started_at"],
                ended_at=state["ended_at"],
                updated_at=time.time(),
                events=events,
                command_results=[
                    (r.command_id, r.applied, r.message, r.status.value)
                    for r in step.command_results
                ],
                event_seq=record.event_seq + len(events),
            )
        ]
    )
    assert written == [True]


# -- the agent flow (tests/chaos/flows.py) ----------------------------------------------------


def agent_reply(request: dict[str, Any]) -> Reply:
    """The chaos agent's model: ``AGENT_TOOL_CALLS`` turns that call the ``step`` tool, then
    the answer. Chosen by turn, so a call sent again after a kill gets the same reply;
    the delay makes kills land while a call is in flight."""
    turn = turn_of(request)
    if turn <= AGENT_TOOL_CALLS:
        call = tool_call(f"call-{turn}", "step", label=f"tool{turn}", ms=15)
        return Reply("", [call], delay=MODEL_DELAY)
    return Reply(AGENT_ANSWER, delay=MODEL_DELAY)


# -- checks -------------------------------------------------------------------------------


def check_task_bodies(history: History, killed: set[int]) -> list[str]:
    """A chaos step's body runs again only when the worker running it was SIGKILLed.

    On Temporal a task whose worker died is retried by Temporal (after the
    heartbeat timeout) on another worker. So: every earlier run of a body was
    in a killed worker, no worker ran one attempt twice, and the recorded
    result is the one the last run returned (a body that ran again after its
    result was recorded would be the last one, with another token).
    """
    problems = []
    execution_id = history.view.id
    completed = {
        e.data["task_run_id"]: e.data.get("outputs") or {}
        for e in history.events
        if e.type == "task.completed"
    }
    for run in history.view.task_runs:
        if run.type != "python":
            continue
        bodies = history.bodies.get(f"{execution_id}/{run.id}", [])
        if run.id in completed and not bodies:
            problems.append(f"{run.id}/{run.task_id} completed but its body never ran")
            continue
        survivors = [b.pid for b in bodies[:-1] if b.pid not in killed]
        if survivors:
            problems.append(
                f"{run.id}/{run.task_id} ran {len(bodies)} times; an earlier run was in "
                f"worker(s) {survivors}, never killed"
            )
        twice = [key for key, n in Counter((b.pid, b.attempt) for b in bodies).items() if n > 1]
        if twice:
            problems.append(f"{run.id}/{run.task_id} ran twice in one worker: {twice}")
        token = completed.get(run.id, {}).get("token")
        if token is not None and token != bodies[-1].token:
            problems.append(
                f"{run.id}/{run.task_id}: the recorded result (token {token}) is not from the "
                f"last run of its body (token {bodies[-1].token}, pid {bodies[-1].pid})"
            )
    return problems


def check_agent(history: History) -> list[str]:
    """A completed agent answered after its tool turns; no message is in its conversation twice,
    and every injected one there came from an applied inject of this execution."""
    if history.spec.kind != "agent" or history.view.state != "COMPLETED":
        return []
    (agent,) = [run for run in history.view.task_runs if run.type == "agent"]
    outputs = agent.outputs or {}
    problems = []
    turns = AGENT_TOOL_CALLS + 1
    if outputs.get("answer") != AGENT_ANSWER or outputs.get("turns") != turns:
        problems.append(
            f"agent answered {outputs.get('answer')!r} after {outputs.get('turns')} turns, "
            f"expected {AGENT_ANSWER!r} after {turns}"
        )
    said = [m.get("content") for m in outputs.get("messages", []) if m.get("role") != "assistant"]
    twice = [text for text, n in Counter(said).items() if n > 1 and text]
    if twice:
        problems.append(f"messages in the agent's conversation twice: {twice}")
    injected = {
        c.payload.get("message")
        for c in history.commands
        if c.kind == "inject" and c.status == "applied"
    }
    strangers = [t for t in said if t and t.startswith("chaos note") and t not in injected]
    if strangers:
        problems.append(f"the conversation has messages no applied inject sent: {strangers}")
    return problems


def check_seen_before(
    view: ExecutionView,
    events: list[EventView],
    seen_outputs: dict[str, dict[str, Any]],
    seen_events: list[EventView],
) -> list[str]:
    """What was read during the storm is still there, unchanged, after it.

    ``seen_outputs``: task run id -> outputs of a run read as SUCCESS; ``seen_events``:
    events read during the storm.
    """
    problems = []
    runs = {run.id: run for run in view.task_runs}
    for run_id, outputs in seen_outputs.items():
        run = runs.get(run_id)
        if run is None or run.outputs != outputs:
            after = None if run is None else run.outputs
            problems.append(f"task run {run_id} read as {outputs} during the storm, now {after}")
    by_seq = {event.seq: event for event in events}
    for event in seen_events:
        now = by_seq.get(event.seq)
        if now is None or (now.type, now.data, now.at) != (event.type, event.data, event.at):
            problems.append(
                f"event #{event.seq} read as {event.type} {event.data} during the storm, now "
                f"{None if now is None else (now.type, now.data)}"
            )
    return problems


def describe_stuck(history: History) -> str:
    view = history.view
    last = history.events[-1] if history.events else None
    points = [f"{p.id} ({p.kind}, due {p.deadline})" for p in view.pause_points]
    pending = [f"{c.kind} {c.id}" for c in history.commands if c.status == "pending"]
    running = [f"{r.task_id}={r.state}" for r in view.task_runs if r.state not in ("SUCCESS",)]
    where = f"last event #{last.seq} {last.type} at {last.at}" if last else "no events"
    return (
        f"state {view.state}, open pause points {points}, pending commands {pending}, "
        f"unfinished task runs {running}, {where}"
    )


def dump_history(workdir: Path, history: History) -> None:
    """Write what the verdict read about one execution beside the logs."""
    document = {
        "view": history.view.model_dump(mode="json"),
        "events": [event.model_dump(mode="json") for event in history.events],
        "commands": [command.model_dump(mode="json") for command in history.commands],
        "accepted": [accepted.command_id for accepted in history.accepted],
    }
    path = workdir / f"execution-{history.view.id}.json"
    path.write_text(json.dumps(document, indent=1))
