"""Crash chaos on temporal+postgres: SIGKILL workers and the API server at random moments.

Real processes on one PostgreSQL database and one Temporal dev server: an API
server (``pausepoint server --runtime temporal``) and two ``pausepoint
worker`` processes. Executions of every kind run at once (python steps,
timed Pause tasks of each timeout behaviour with near deadlines, an approval,
parallel branches, ``finally`` tasks after a success or a failure, agents
mid-turn against the test model server) while the test sends random control
requests over HTTP and SIGKILLs, at random moments, a worker (replaced by a
new one), both workers, or the API server (restarted on the same port and
database). Requests in flight when the server dies are "in doubt": the audit
tells (by request id) whether they were recorded, and one with an
Idempotency-Key is sent again, as a client would, and must get the first
reply.

After the storm the processes of the last round finish everything (what waits
for a person is resumed), and every execution must be terminal in the state
its history calls for; every accepted command applied or refused exactly
once; no recorded result changed (the chains of tokens, and everything read
during the storm); event sequences gap-free; a task body re-run only when the
worker running it was killed; no workflow left running on Temporal.

Quick mode runs in the normal suite; ``PAUSEPOINT_CHAOS_FULL=1`` runs the long
storm (300 executions, 20 kills). ``PAUSEPOINT_CHAOS_SEED`` replays a seed's
choices (the timing of the kills is never exactly reproducible).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from pausepoint.config import Settings
from pausepoint.models import EventView
from pausepoint.service.engine import Engine
from pausepoint.service.requests import InjectRequest, PauseRequest
from pausepoint.store.access import ABANDONED_CLAIM_SECONDS
from pausepoint.testing import assert_eventually
from tests.agents.model_server import ModelServer, model_server
from tests.api.conftest import free_port
from tests.chaos.checks import (
    Accepted,
    History,
    check_commands,
    check_event_log,
    check_final_state,
    check_recorded_results,
    read_run_log,
)
from tests.chaos.flows import NAMESPACE, FlowSpec, all_flows
from tests.temporal.chaos_support import (
    KEY,
    START_TIMEOUT,
    WORKER_READY,
    Api,
    Cluster,
    Doubt,
    Process,
    agent_reply,
    check_agent,
    check_seen_before,
    check_task_bodies,
    describe_stuck,
    dump_history,
    dump_workflows,
    no_workflow_left,
    start_server,
    start_worker,
    wait_healthy,
    write_lost_step,
)
from tests.temporal.conftest import running_worker

pytestmark = pytest.mark.chaos

TERMINAL = {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}
FULL = os.environ.get("PAUSEPOINT_CHAOS_FULL") == "1"
WORKERS = 2


@dataclass(frozen=True)
class Plan:
    executions: int
    crashes: int
    settle_timeout: float  # seconds the last processes get to finish everything
    # ... or to change the state of any open execution. A worker killed while it held a
    # workflow task leaves that workflow waiting for Temporal's 10 s task timeout.
    stall_timeout: float = 30.0
    started_late: float = 0.5  # share of the executions started during the storm ...
    open_target: int = 12  # ... whenever fewer than this many are open


QUICK_PLAN = Plan(executions=36, crashes=5, settle_timeout=100.0)
FULL_PLAN = Plan(executions=300, crashes=20, settle_timeout=400.0, open_target=60)

# Relative weights of what the test does between kills.
OPERATIONS = {
    "pause": 25,
    "resume": 30,
    "inject": 18,
    "cancel": 5,
    "terminate": 3,
    "replay": 7,
    "peek": 6,
    "start": 12,
}
# What each kill hits.
TARGETS = {"worker": 5, "workers": 1, "server": 3}


@dataclass
class Storm:
    """The client side of one storm: processes, executions, every command and its reply."""

    cluster: Cluster
    http: httpx.AsyncClient
    rng: random.Random
    specs: list[FlowSpec]
    plan: Plan
    server: Process | None = None
    workers: list[Process] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)  # worker pids
    killed_servers: set[int] = field(default_factory=set)
    doubts_recorded: int = 0
    suspects: list[str] = field(default_factory=list)  # executions the verdict faults
    kills: Counter[str] = field(default_factory=Counter)
    executions: dict[str, tuple[FlowSpec, dict[str, Any]]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # the "chaos" label -> execution id
    accepted: dict[str, list[Accepted]] = field(default_factory=dict)
    keyed: list[tuple[str, dict[str, Any], str, str]] = field(default_factory=list)
    doubts: list[Doubt] = field(default_factory=list)
    retries: set[asyncio.Task[None]] = field(default_factory=set)
    started: int = 0
    refused: int = 0
    replays: int = 0
    problems: list[str] = field(default_factory=list)
    seen_outputs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seen_events: dict[str, list[EventView]] = field(default_factory=dict)
    coverage: str = ""
    open_ids: list[str] = field(default_factory=list)
    open_read_at: float = 0.0

    def __post_init__(self) -> None:
        self.api = Api(self.http)

    # -- processes ---------------------------------------------------------------------

    def _name(self, role: str) -> str:
        return f"{role}-{sum(p.role == role for p in self.processes) + 1}"

    async def start_server(self) -> str | None:
        """Start an API server; the admin key it prints on its first start, if it did."""
        server = start_server(self.cluster, self._name("server"))
        self.processes.append(server)
        self.server = server
        key = None
        if len([p for p in self.processes if p.role == "server"]) == 1:
            key = (await server.wait_for_output(KEY, START_TIMEOUT)).group(0)
        await wait_healthy(server, self.cluster.base_url)
        return key

    async def start_worker(self, slot: int) -> None:
        worker = start_worker(self.cluster, self._name("worker"))
        self.processes.append(worker)
        if slot < len(self.workers):
            self.workers[slot] = worker
        else:
            self.workers.append(worker)
        await worker.wait_for_output(WORKER_READY, START_TIMEOUT)

    async def boot(self) -> str:
        """Start the server (it prints the admin key once) and the workers; return the key."""
        key = await self.start_server()
        assert key is not None
        await asyncio.gather(*(self.start_worker(slot) for slot in range(WORKERS)))
        return key

    def check_alive(self) -> None:
        for process in [self.server, *self.workers]:
            assert process is not None
            if not process.alive:
                raise AssertionError(f"{process!r} died on its own\n{process.log_tail()}")

    async def kill_server(self) -> None:
        assert self.server is not None
        self.check_alive()
        self.killed_servers.add(self.server.pid)
        await self.server.kill()
        self.kills["server"] += 1
        await asyncio.sleep(self.rng.uniform(0.0, 1.0))  # requests meanwhile find no one
        await self.start_server()

    async def kill_workers(self, slots: list[int]) -> None:
        self.check_alive()
        for slot in slots:
            self.killed.add(self.workers[slot].pid)
            await self.workers[slot].kill()
            self.kills["worker"] += 1
        if self.rng.random() < 0.5:
            await self.burst()  # accepted while those workers are dead
        await asyncio.gather(*(self.start_worker(slot) for slot in slots))

    async def stop_all(self) -> None:
        for retry in self.retries:
            retry.cancel()
        await asyncio.gather(*self.retries, return_exceptions=True)
        await asyncio.gather(*(p.kill() for p in self.processes))

    def logs(self) -> str:
        return "\n".join(p.log_tail(15) for p in self.processes[-4:])

    def write_index(self) -> None:
        """Which log is which process, and which were killed: for reading a failure."""
        lines = [
            f"{p.log_path.name} pid {p.pid}"
            + (" SIGKILLed" if p.pid in self.killed | self.killed_servers else "")
            for p in self.processes
        ]
        (self.cluster.workdir / "processes.txt").write_text("\n".join(lines) + "\n")

    # -- requests ----------------------------------------------------------------------

    async def post(
        self, kind: str, path: str, body: dict[str, Any], execution_id: str | None, key: str | None
    ) -> httpx.Response | None:
        """POST with a request id the audit keeps. No reply (the server died): the request is
        in doubt; one with an Idempotency-Key is sent again until it gets a reply."""
        request_id = f"rq-{uuid.uuid4().hex}"
        try:
            return await self.http.post(path, json=body, headers=self._headers(request_id, key))
        except httpx.TransportError as error:
            doubt = Doubt(kind, path, execution_id, body, key, [request_id])
            self.doubts.append(doubt)
            if key is not None:
                received = not isinstance(error, httpx.ConnectError)
                retry = asyncio.create_task(self.send_again(doubt, received))
                self.retries.add(retry)
                retry.add_done_callback(self.retries.discard)
            return None

    @staticmethod
    def _headers(request_id: str, key: str | None) -> dict[str, str]:
        headers = {"X-Request-ID": request_id}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def send_again(self, doubt: Doubt, received: bool) -> None:
        """Send an unanswered request again with its Idempotency-Key until it is answered.

        A server that died holding the key's reservation leaves it to a retry only
        after ``ABANDONED_CLAIM_SECONDS``; until then the key answers 409 "in progress".
        """
        assert doubt.key is not None
        loop = asyncio.get_running_loop()
        if received:
            # The behaviour under test: the dead server's claim on the key lasts this long.
            await asyncio.sleep(ABANDONED_CLAIM_SECONDS + 0.5)
        deadline = loop.time() + ABANDONED_CLAIM_SECONDS + 30
        while True:
            request_id = f"rq-{uuid.uuid4().hex}"
            doubt.request_ids.append(request_id)
            try:
                reply = await self.http.post(
                    doubt.path, json=doubt.body, headers=self._headers(request_id, doubt.key)
                )
            except httpx.ConnectError:
                await asyncio.sleep(0.5)  # no server at the moment: nothing was received
                continue
            except httpx.TransportError:
                await asyncio.sleep(ABANDONED_CLAIM_SECONDS + 0.5)  # it died again
                continue
            if reply.status_code == 409 and "in progress" in reply.text:
                if loop.time() < deadline:
                    await asyncio.sleep(1.0)  # a retry after "in progress", as a client would
                    continue
                self.problems.append(
                    f"{doubt.kind} {doubt.path} (Idempotency-Key {doubt.key}) still answers "
                    f"'in progress' long after the server holding it died: {reply.text[:200]}"
                )
            break
        doubt.reply = reply
        if doubt.kind == "start":
            self.started_reply(doubt.body, reply)
        else:
            assert doubt.execution_id is not None
            self.judge(doubt.kind, doubt.execution_id, doubt.body, doubt.key, reply)

    async def control(
        self, kind: str, execution_id: str, body: dict[str, Any], key: str | None = None
    ) -> None:
        path = f"/api/v1/executions/{execution_id}/{kind}"
        reply = await self.post(kind, path, body, execution_id, key)
        if reply is not None:
            self.judge(kind, execution_id, body, key, reply)

    def judge(
        self,
        kind: str,
        execution_id: str,
        body: dict[str, Any],
        key: str | None,
        reply: httpx.Response,
    ) -> None:
        """Remember an accepted command; count a refusal; anything else is a problem."""
        if reply.status_code in (200, 202):
            command_id = reply.json()["command_id"]
            self.accepted[execution_id].append(Accepted(command_id, kind, execution_id, body))
            if key is not None:
                path = f"/api/v1/executions/{execution_id}/{kind}"
                self.keyed.append((path, body, key, command_id))
        elif reply.status_code in (409, 422):
            self.refused += 1
        else:
            self.problems.append(
                f"{kind} {body} on {execution_id}: {reply.status_code} {reply.text[:300]}"
            )

    async def start_execution(self) -> None:
        spec = self.specs[self.started % len(self.specs)]
        self.started += 1
        inputs = {"fail": self.rng.random() < 0.4} if spec.kind == "finally" else {}
        body = {
            "namespace": NAMESPACE,
            "flow_id": spec.flow_id,
            "inputs": inputs,
            "labels": {"chaos": uuid.uuid4().hex[:16]},
        }
        key = f"start-{uuid.uuid4().hex[:16]}"
        reply = await self.post("start", "/api/v1/executions", body, None, key)
        if reply is not None:
            self.started_reply(body, reply)

    def started_reply(self, body: dict[str, Any], reply: httpx.Response) -> None:
        if reply.status_code != 201:
            self.problems.append(f"starting {body}: {reply.status_code} {reply.text[:300]}")
            return
        execution_id = reply.json()["id"]
        spec = next(s for s in self.specs if s.flow_id == body["flow_id"])
        self.executions[execution_id] = (spec, body["inputs"])
        self.accepted.setdefault(execution_id, [])
        self.labels[body["labels"]["chaos"]] = execution_id

    async def random_command(self) -> None:
        rng = self.rng
        weights = dict(OPERATIONS)
        if self.started >= self.plan.executions or len(self.open_ids) >= self.plan.open_target:
            del weights["start"]
        operation = rng.choices(list(weights), weights=list(weights.values()))[0]
        if operation == "start":
            await self.start_execution()
            return
        if operation == "replay":
            await self.replay()
            return
        execution_id = await self.target()
        if operation == "peek":
            await self.peek(execution_id)
            return
        key = f"key-{uuid.uuid4().hex[:16]}" if rng.random() < 0.5 else None
        if operation == "pause":
            body: dict[str, Any] = {"reason": "chaos pause"}
        elif operation == "inject":
            role = rng.choice(["user", "system"])
            body = {"message": f"chaos note {uuid.uuid4().hex}", "role": role}
        elif operation == "cancel":
            body = {"reason": "chaos cancel"}
        elif operation == "terminate":
            body = {"reason": "chaos terminate"}
        else:
            paused = [s["id"] for s in await self.api.executions("PAUSED", "PAUSING")]
            paused = [e for e in paused if e in self.executions]
            if paused and rng.random() < 0.8:
                execution_id = rng.choice(paused)
            body = await self.resume_body(execution_id)
        await self.control(operation, execution_id, body, key)

    async def target(self) -> str:
        """Mostly an execution still open (commands to finished ones are only refused)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self.open_read_at > 0.5:
            self.open_read_at = loop.time()
            summaries = await self.api.executions()
            self.open_ids = [s["id"] for s in summaries if s["state"] not in TERMINAL]
        known = [e for e in self.open_ids if e in self.executions]
        if known and self.rng.random() < 0.85:
            return self.rng.choice(known)
        return self.rng.choice(list(self.executions))

    async def resume_body(self, execution_id: str) -> dict[str, Any]:
        """Resume a random open pause point; sometimes with inputs the server must refuse."""
        state = await self.api.get(f"/api/v1/executions/{execution_id}/state")
        points = state["pause_points"]
        if not points:
            return {}  # nothing to resume: refused with 409
        point = self.rng.choice(points)
        inputs: dict[str, Any] = {}
        if "approved" in (point.get("on_resume_schema") or {}).get("properties", {}):
            if self.rng.random() < 0.2:
                inputs = {"approved": "perhaps"}  # not a BOOLEAN: 422
            else:
                inputs = {"approved": self.rng.random() < 0.5, "note": uuid.uuid4().hex[:8]}
        body: dict[str, Any] = {"inputs": inputs}
        if len(points) > 1 or self.rng.random() < 0.5:
            body["pause_id"] = point["id"]
        return body

    async def replay(self) -> None:
        """Send an answered request again with its Idempotency-Key: the same command comes back."""
        if not self.keyed:
            return
        path, body, key, command_id = self.rng.choice(self.keyed)
        try:
            reply = await self.http.post(path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            return  # the first one was answered: a lost replay cannot record anything
        self.replays += 1
        same = reply.status_code in (200, 202) and reply.json().get("command_id") == command_id
        if not same or reply.headers.get("Idempotent-Replayed") != "true":
            self.problems.append(
                f"replaying {path} (key {key}, command {command_id}) gave "
                f"{reply.status_code} {reply.text[:300]}"
            )

    async def peek(self, execution_id: str) -> None:
        """Read an execution during the storm; the verdict checks none of it changed later."""
        view = await self.api.execution(execution_id)
        events = await self.api.events(execution_id)
        outputs = self.seen_outputs.setdefault(execution_id, {})
        for run in view.task_runs:
            if run.state == "SUCCESS" and run.outputs is not None:
                outputs[run.id] = run.outputs
        self.seen_events[execution_id] = events

    async def commands_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.rng.uniform(0.005, 0.05))  # random moments are the point
            await self.random_command()

    async def burst(self) -> None:
        """A few commands with no pause: the kill that follows lands before they apply."""
        for _ in range(self.rng.randint(1, 4)):
            await self.random_command()

    async def until_a_timer_falls_due(self, within: float) -> None:
        """Sleep until just after the next Pause task deadline, if one is near."""
        paused = await self.api.executions("PAUSED")
        timed = [s["id"] for s in paused if s["flow_id"].startswith("timed_")]
        now = time.time()
        deadlines = []
        for execution_id in self.rng.sample(timed, min(len(timed), 6)):
            state = await self.api.get(f"/api/v1/executions/{execution_id}/state")
            for point in state["pause_points"]:
                if point.get("deadline"):
                    due = datetime.fromisoformat(point["deadline"]).timestamp()
                    if now < due < now + within:
                        deadlines.append(due)
        if deadlines:
            await asyncio.sleep(min(deadlines) - time.time() + self.rng.uniform(0.0, 0.05))

    # -- the storm -------------------------------------------------------------------------

    async def rage(self) -> None:
        """Commands from two senders throughout, and ``plan.crashes`` kills at random moments."""
        stop = asyncio.Event()
        senders = [asyncio.create_task(self.commands_until(stop)) for _ in range(2)]
        try:
            targets = ["server", "worker"]  # each kind at least once
            while len(targets) < self.plan.crashes:
                targets += self.rng.choices(list(TARGETS), weights=list(TARGETS.values()))
            self.rng.shuffle(targets)
            for target in targets[: self.plan.crashes]:
                await asyncio.sleep(self.rng.uniform(0.3, 2.0))  # crash at a random moment
                if self.rng.random() < 0.3:
                    await self.until_a_timer_falls_due(within=1.0)
                if self.rng.random() < 0.5:
                    await self.burst()
                if target == "server":
                    await self.kill_server()
                elif target == "workers":
                    await self.kill_workers(list(range(WORKERS)))
                else:
                    await self.kill_workers([self.rng.randrange(WORKERS)])
                for sender in senders:
                    if sender.done():
                        sender.result()  # a sender that failed says why
        finally:
            stop.set()
            await asyncio.gather(*senders, return_exceptions=True)
        for sender in senders:
            sender.result()
        while self.started < self.plan.executions:
            await self.start_execution()

    async def resolve_doubts(self) -> None:
        """What became of the requests the server died on: the audit knows (by request id).

        One recorded by the server that died must have been answered, when sent
        again with its Idempotency-Key, with that same command; no request may have
        been recorded twice, and no execution started that nobody knows of.
        """
        for doubt in self.doubts:
            if doubt.key is not None and doubt.reply is None:
                self.problems.append(f"{doubt.kind} {doubt.path} was never answered")
            if doubt.kind == "start":
                continue
            assert doubt.execution_id is not None
            audit = await self.api.audit(doubt.execution_id)
            recorded = [c for c in audit if c.request_id in doubt.request_ids]
            if len(recorded) > 1:
                self.problems.append(
                    f"{doubt.kind} on {doubt.execution_id} sent again with its Idempotency-Key "
                    f"was recorded {len(recorded)} times: {[c.id for c in recorded]}"
                )
            if not recorded:
                continue
            self.doubts_recorded += 1
            command = recorded[0]
            if doubt.reply is None:  # no key: nobody ever told us, but it was accepted
                self.accepted[doubt.execution_id].append(
                    Accepted(command.id, doubt.kind, doubt.execution_id, doubt.body)
                )
            elif (
                doubt.reply.status_code not in (200, 202)
                or doubt.reply.json().get("command_id") != command.id
            ):
                self.problems.append(
                    f"{doubt.kind} {command.id} on {doubt.execution_id} was recorded by a server "
                    f"that died; sent again with its Idempotency-Key {doubt.key} it got "
                    f"{doubt.reply.status_code} {doubt.reply.text[:300]}, not that command"
                )
        counts = Counter(s["labels"].get("chaos") for s in await self.api.executions())
        for label, count in counts.items():
            if label not in self.labels:
                self.problems.append(f"{count} execution(s) labelled {label} that nobody started")
            elif count > 1:
                self.problems.append(f"the start labelled {label} made {count} executions")

    async def settle(self) -> dict[str, str]:
        """Resume what waits for a person until every execution is terminal.

        Requests sent again after a server died are answered first. Gives up after
        ``plan.settle_timeout`` seconds, or when no open execution changed state for
        ``plan.stall_timeout``; returns the executions left open.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.settle_timeout
        last: frozenset[tuple[str, str]] = frozenset()
        changed_at = loop.time()
        while True:
            still_open = {
                s["id"]: s["state"]
                for s in await self.api.executions()
                if s["state"] not in TERMINAL
            }
            if not still_open and not self.retries:
                return {}
            self.check_alive()
            now = loop.time()
            if frozenset(still_open.items()) != last or self.retries:
                last, changed_at = frozenset(still_open.items()), now
            if now > deadline or now - changed_at > self.plan.stall_timeout:
                return still_open
            for execution_id, state in still_open.items():
                if state == "PAUSED":
                    await self.resume_waiting(execution_id)
            # Not assert_eventually: the end is "nothing changed for stall_timeout", and what
            # is still open then is the finding that the caller reports.
            await asyncio.sleep(0.3)

    async def resume_waiting(self, execution_id: str) -> None:
        state = await self.api.get(f"/api/v1/executions/{execution_id}/state")
        for point in state["pause_points"]:
            if point["kind"] == "task" and point.get("deadline"):
                continue  # a timed Pause task: its timer decides
            inputs: dict[str, Any] = {}
            if "approved" in (point.get("on_resume_schema") or {}).get("properties", {}):
                inputs = {"approved": True, "note": "settled"}
            await self.control("resume", execution_id, {"inputs": inputs, "pause_id": point["id"]})

    # -- verdict ---------------------------------------------------------------------------

    async def histories(self) -> list[History]:
        bodies = read_run_log(self.cluster.run_log)
        histories = []
        for execution_id, (spec, inputs) in self.executions.items():
            prefix = f"{execution_id}/"
            histories.append(
                History(
                    spec=spec,
                    inputs=inputs,
                    view=await self.api.execution(execution_id),
                    events=await self.api.events(execution_id),
                    commands=await self.api.audit(execution_id),
                    accepted=self.accepted[execution_id],
                    bodies={k: v for k, v in bodies.items() if k.startswith(prefix)},
                )
            )
        return histories

    async def verdict(self, still_open: dict[str, str]) -> list[str]:
        problems = list(self.problems)
        histories = await self.histories()
        self.note_coverage(histories)
        for history in histories:
            execution_id = history.view.id
            name = f"{execution_id} ({history.spec.flow_id})"
            if execution_id in still_open:
                found = [f"never finished: {describe_stuck(history)}"]
            else:
                found = [
                    *check_final_state(history),
                    *check_event_log(history),
                    *check_recorded_results(history),
                    *check_commands(history),
                    *self.body_checks(history),
                    *check_seen_before(
                        history.view,
                        history.events,
                        self.seen_outputs.get(execution_id, {}),
                        self.seen_events.get(execution_id, []),
                    ),
                ]
            problems += [f"{name}: {problem}" for problem in found]
            if found:
                self.suspects.append(execution_id)
                dump_history(self.cluster.workdir, history)
        for process in self.processes:
            if "Traceback" in process.log_text():
                problems.append(f"{process!r} logged a traceback:\n{process.log_tail(60)}")
        return problems

    def body_checks(self, history: History) -> list[str]:
        """What the task bodies' runs must show: none ran twice unless its worker died."""
        return [*check_task_bodies(history, self.killed), *check_agent(history)]

    def note_coverage(self, histories: list[History]) -> None:
        """What the storm actually exercised, for the summary line."""
        statuses = Counter(c.status for h in histories for c in h.commands)
        reruns = sum(len(b) - 1 for h in histories for b in h.bodies.values())
        terminates = sum(
            c.kind == "terminate" and c.status == "applied" for h in histories for c in h.commands
        )
        self.coverage = (
            f"commands {dict(statuses)} ({terminates} terminates applied), "
            f"{len(self.doubts)} requests in doubt ({self.doubts_recorded} of them recorded), "
            f"{self.replays} idempotent replays, "
            f"{reruns} task bodies re-run"
        )

    def summary(self, states: Counter[str]) -> str:
        accepted = sum(len(a) for a in self.accepted.values())
        return (
            f"{len(self.executions)} executions, kills {dict(self.kills)}, {accepted} commands "
            f"accepted, {self.refused} refused; final states {dict(sorted(states.items()))}; "
            f"{self.coverage}"
        )


async def run_storm(plan: Plan, workdir: Path, db_url: str, temporal_address: str) -> None:
    seed = int(os.environ.get("PAUSEPOINT_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed {seed} (PAUSEPOINT_CHAOS_SEED={seed} replays its choices)")
    rng = random.Random(seed)
    cluster = Cluster(
        db_url=db_url,
        temporal_address=temporal_address,
        task_queue=f"chaos-{uuid.uuid4().hex[:12]}",
        port=free_port(),
        workdir=workdir,
        secrets_key=Fernet.generate_key().decode(),
    )
    with model_server() as model:
        model.script = agent_reply
        specs = all_flows(model.url)
        async with httpx.AsyncClient(base_url=cluster.base_url, timeout=30) as http:
            storm = Storm(cluster, http, rng, specs, plan)
            try:
                key = await storm.boot()
                http.headers["X-API-Key"] = key
                for spec in specs:
                    reply = await http.put(
                        f"/api/v1/flows/{NAMESPACE}/{spec.flow_id}",
                        content=spec.source,
                        headers={"Content-Type": "application/x-yaml"},
                    )
                    assert reply.status_code == 201, reply.text
                early = plan.executions - int(plan.executions * plan.started_late)
                for _ in range(early):
                    await storm.start_execution()
                await storm.rage()
                still_open = await storm.settle()
                await storm.resolve_doubts()
                problems = await storm.verdict(still_open)
                if not still_open:
                    left = await no_workflow_left(temporal_address, cluster.task_queue)
                    if left:
                        problems.append(f"workflows still running on Temporal: {left}")
                    storm.suspects += [w.removeprefix("pausepoint-") for w in left]
                await dump_workflows(temporal_address, sorted(set(storm.suspects)), workdir)
                states = Counter(s["state"] for s in await storm.api.executions())
            except BaseException as error:
                error.add_note(f"chaos seed {seed}; files in {workdir}\n{storm.logs()}")
                raise
            finally:
                await storm.stop_all()
                storm.write_index()
    print(storm.summary(states), f"model requests {len(_requests(model))}")
    if problems:
        shown = "\n".join(f"- {p}" for p in problems[:60])
        more = f"\n… and {len(problems) - 60} more" if len(problems) > 60 else ""
        pytest.fail(
            f"chaos seed {seed}: {len(problems)} invariant violations after "
            f"{storm.summary(states)}\n{shown}{more}\nlogs and task-body log in {workdir}",
            pytrace=False,
        )


def _requests(model: ModelServer) -> list[dict[str, Any]]:
    with model.lock:
        return list(model.requests)


HELD_FLOW = """
id: held
namespace: chaos
tasks:
  - id: approval
    type: pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: after
    type: return
    format: "approved={{ outputs.approval.onResume.approved }}"
"""


async def test_a_step_a_lost_workflow_task_checkpointed_wins_over_the_one_retried(
    control_plane: Engine, settings: Settings
) -> None:
    """The store holds a step Temporal never recorded; the retried task takes another one.

    Here the lost task applied an inject; Temporal runs the task again with the
    inject and a pause in hand. The store's step stands (the inject is applied
    once), the pause is applied after it, and the event log stays gap-free.
    """
    await control_plane.put_flow(HELD_FLOW)
    async with running_worker(settings):
        execution = await control_plane.start_execution("chaos", "held")
        await control_plane.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=20)
    # No worker runs: both commands wait in the workflow's history, to be taken at once.
    inject = await control_plane.control(
        InjectRequest(execution_id=execution.id, message="note from the lost task", wait=False)
    )
    pause = await control_plane.control(
        PauseRequest(execution_id=execution.id, reason="hold it", wait=False)
    )
    await write_lost_step(control_plane, execution.id, inject.command_id)

    async with running_worker(settings):

        async def both_applied() -> bool:
            commands = await control_plane.commands(execution.id)
            return all(c.status == "applied" for c in commands)

        await assert_eventually(both_applied, timeout=30)
        await control_plane.resume(execution.id, pause_id=pause.command_id)
        await control_plane.resume(execution.id, pause_id="p-t1", inputs={"approved": True})
        view = await control_plane.wait(execution.id, timeout=30)

    assert view.state == "COMPLETED", view
    assert view.task_run("after").outputs == {"value": "approved=True"}
    assert [m.message for m in view.context] == ["note from the lost task"]
    events = await control_plane.events(execution.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events].count("context.injected") == 1
    commands = await control_plane.commands(execution.id)
    assert [(c.kind, c.status) for c in commands] == [
        ("inject", "applied"),
        ("pause", "applied"),
        ("resume", "applied"),
        ("resume", "applied"),
    ]
    holds = [e for e in events if e.type == "workflow.resumed"]
    assert [e.data["pause_id"] for e in holds] == [pause.command_id, "p-t1"]


@pytest.mark.timeout(330)
async def test_every_execution_survives_sigkills_of_workers_and_the_api_server(
    tmp_path: Path, postgres_url: str, temporal_address: str
) -> None:
    await run_storm(QUICK_PLAN, tmp_path, postgres_url, temporal_address)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not FULL, reason="set PAUSEPOINT_CHAOS_FULL=1 for the long storm")
async def test_every_execution_survives_a_long_storm_on_temporal(
    tmp_path: Path, postgres_url: str, temporal_address: str
) -> None:
    await run_storm(FULL_PLAN, tmp_path, postgres_url, temporal_address)
