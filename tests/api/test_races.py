"""Races between concurrent HTTP clients, generated and shrunk by hypothesis.

Each example starts a few executions of a flow with a gated ``python`` step
(so that work is in flight and a pause must wait for the next checkpoint), a
Pause task with typed ``onResume`` inputs and a timed Pause task (whose timer
races with resumes). Then it plays batches of random operations — pause,
resume with valid and invalid inputs (with or without a ``pause_id``), cancel,
terminate, inject, state reads, releasing the gated step, a request sent twice
at once with one ``Idempotency-Key`` — from several clients at once against a
real server on a real SQLite file.

After every batch the history must be linearizable against the control
contract (ARCHITECTURE §3), with the acceptance order (the audit's ``seq``) as
the serial order:

- no reply is a 5xx; 202/200 replies are accepted commands, each in the audit
  exactly once, and the audit holds nothing else;
- the audit's commands are applied in that order and none stays pending;
- replaying the applied commands in that order through the contract's rules
  (:class:`ContractModel`, written here from the table, not imported from the
  engine) never makes an illegal move, and the state each command left
  (``state_after``) is one that order allows; cancel and terminate win:
  nothing but cancel/terminate is accepted after them;
- a command accepted but rejected when applied is explained by something the
  engine did meanwhile (the execution finished, a timer closed the pause);
- every 409 names a state in which its operation is illegal, and that state
  held at some moment while the request was in flight;
- 422s name the field; the side effects of applied commands happened once
  (``tests.chaos.checks.check_commands``).

At the end of each example the executions still running are terminated and the
finished histories are checked whole (``check_event_log``, final states).

``PAUSEPOINT_RACES_EXAMPLES`` sets the number of examples (default 15).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pausepoint.models import CommandView, EventView, ExecutionView
from pausepoint.testing import assert_eventually
from tests.api.matrix_support import assert_sane, gated_server, gates
from tests.chaos.checks import Accepted, History, check_commands, check_event_log
from tests.chaos.flows import FlowSpec

# A fuzzer with a bounded quick mode (`make soak` runs it at full length).
pytestmark = pytest.mark.chaos

EXAMPLES = int(os.environ.get("PAUSEPOINT_RACES_EXAMPLES", "15"))
CLIENTS = 3
NAMESPACE = "api.races"
TERMINAL = frozenset({"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"})
# Slack for the server's millisecond timestamps and for the moment a checkpoint
# becomes visible to admission after the time its events carry.
CLOCK_SLACK = 0.05
COMMIT_LAG = 0.5

RACE_FLOW = f"""
id: race
namespace: {NAMESPACE}
inputs:
  - id: key
    type: STRING
tasks:
  - id: work
    type: python
    function: flows_gates:step
    kwargs:
      key: "{{{{ inputs.key }}}}"
  - id: approve
    type: pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: count
        type: INT
        min: 0
        max: 10
        defaults: 1
  - id: nap
    type: pause
    pauseDuration: PT0.3S
    behavior: RESUME
  - id: done
    type: return
    format: "approved={{{{ outputs.approve.onResume.approved }}}}"
"""
SPEC = FlowSpec("race", "sequential", RACE_FLOW, ("work", "approve", "nap", "done"))

RESUME_INPUTS: tuple[dict[str, Any], ...] = (
    {},  # right for a manual pause, missing `approved` for the Pause task
    {"approved": True, "count": 3},  # right for the Pause task
    {"approved": "perhaps"},  # not a boolean
    {"approved": False, "count": 11},  # over the maximum
    {"approved": True, "surplus": 1},  # an unknown input
)


# -- operations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    client: int
    execution: int
    kind: str  # state | release | inject | pause | resume | cancel | terminate
    variant: int = 0  # resume: index into RESUME_INPUTS; others: with or without a reason
    target: str = "any"  # resume: no pause_id, the open task / manual one, or a stale one
    twice: bool = False  # sent twice at once with one Idempotency-Key

    def __repr__(self) -> str:
        extra = f" inputs={RESUME_INPUTS[self.variant]} target={self.target}"
        return (
            f"Op(c{self.client} e{self.execution} {self.kind}"
            f"{extra if self.kind == 'resume' else ''}{' twice' if self.twice else ''})"
        )


# Shrinking moves toward the front: harmless reads first, the final word last. Repeats
# weight the draw, so that most examples live long enough to race.
KINDS = (
    *("state", "release", "release", "inject", "inject", "inject"),
    *("pause",) * 5,
    *("resume",) * 8,
    *("cancel", "terminate"),
)
# Resumes mostly carry what an open pause point takes; the rest is wrong on purpose.
VARIANTS = (0, 0, 1, 1, 1, 2, 3, 4)

ops = st.builds(
    Op,
    client=st.integers(0, CLIENTS - 1),
    execution=st.integers(0, 2),
    kind=st.sampled_from(KINDS),
    variant=st.sampled_from(VARIANTS),
    target=st.sampled_from(("any", "any", "task", "manual", "stale")),
    twice=st.booleans(),
)
scenarios = st.tuples(
    # One entry per execution: whether its gated step may finish from the start.
    st.lists(st.booleans(), min_size=1, max_size=3),
    st.lists(st.lists(ops, min_size=1, max_size=10), min_size=1, max_size=5),  # batches
)
Scenario = tuple[list[bool], list[list[Op]]]


# -- what the clients saw ------------------------------------------------------------------


@dataclass
class Refusal:
    kind: str
    message: str
    sent: float  # time.time() before the request went out
    replied: float  # time.time() when the reply was in


@dataclass
class Tracked:
    """One execution of an example and everything its clients were told about it."""

    id: str
    key: str
    accepted: dict[str, Accepted] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    timing: dict[str, tuple[float, float]] = field(default_factory=dict)  # command -> sent, replied
    pause_ids: dict[str, str] = field(default_factory=dict)  # "task"/"manual" -> last seen id
    replies: list[str] = field(default_factory=list)  # for failure reports


def seconds(stamp: str | None) -> float:
    assert stamp is not None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# -- the contract, written from ARCHITECTURE §3 ---------------------------------------------


FREE = frozenset({"QUEUED", "RUNNING", "PAUSED"})


@dataclass
class ContractModel:
    """The control-relevant state a serial order of applied commands leads to."""

    holds: set[str] = field(default_factory=set)  # open manual pauses (pause command ids)
    stopping: bool = False  # a cancel was applied
    terminated: bool = False

    def apply(self, command: CommandView) -> str | None:
        """Apply ``command``; the problem if the contract forbids it here, else None."""
        kind = command.kind
        if self.terminated:
            return "applied after the execution was terminated"
        if kind == "terminate":
            self.terminated, self.holds = True, set()
            return None
        if kind == "cancel":
            self.stopping, self.holds = True, set()
            return None
        if self.stopping:
            return "applied after a cancel (cancel must win)"
        if kind == "pause":
            if self.holds:
                return f"a second pause applied while {sorted(self.holds)} held it"
            self.holds.add(command.id)
        elif kind == "resume":
            pause_id = command.payload.get("pause_id")
            if pause_id in self.holds:
                self.holds.discard(pause_id)
            elif not str(pause_id).startswith("p-"):
                return f"resumed pause point {pause_id!r}, which no applied pause opened"
        return None

    def states(self) -> frozenset[str]:
        """The states an execution may be in right after the commands applied so far."""
        if self.terminated:
            return frozenset({"TERMINATED"})
        if self.stopping:
            return frozenset({"CANCELLING", "CANCELLED"})
        if self.holds:
            return frozenset({"PAUSING", "PAUSED"})
        # Running, or stopped at a Pause task (which a resume of a hold uncovers).
        return FREE


def check_serial_order(commands: list[CommandView], events: list[EventView]) -> list[str]:
    """Replay the audit in acceptance order through :class:`ContractModel`."""
    problems: list[str] = []
    seqs = [c.seq for c in commands]
    if seqs != list(range(1, len(commands) + 1)):
        problems.append(f"audit seqs are not 1..n: {seqs}")
    pending = [c.id for c in commands if c.status == "pending"]
    if pending:
        problems.append(f"commands left pending: {pending}")
    settled = [c for c in commands if c.status != "pending"]
    applied_at = [seconds(c.applied_at) for c in settled]
    if applied_at != sorted(applied_at):
        problems.append("commands were applied out of acceptance order")
    first_stop = next((c for c in commands if c.kind in ("cancel", "terminate")), None)
    if first_stop is not None:
        late = [
            f"{c.seq}:{c.kind}"
            for c in commands
            if c.seq > first_stop.seq
            and (c.kind not in ("cancel", "terminate") or first_stop.kind == "terminate")
        ]
        if late:
            problems.append(f"accepted after the {first_stop.kind} at seq {first_stop.seq}: {late}")

    timer_resumed = {
        e.data.get("pause_id")
        for e in events
        if e.type == "workflow.resumed" and e.data.get("by") == "timer"
    }
    finished_alone = any(e.type == "workflow.completed" for e in events)
    model = ContractModel()
    allowed_after: list[frozenset[str]] = []  # the states the model allows after each command
    for command in settled:
        where = f"seq {command.seq} {command.kind} {command.id}"
        if command.status == "rejected":
            ended = command.state_after in TERMINAL and (
                finished_alone or command.kind in ("cancel", "terminate")
            )
            timer = command.kind == "resume" and command.payload.get("pause_id") in timer_resumed
            if not (ended or timer):
                problems.append(
                    f"{where} was accepted, then rejected ({command.message}) with nothing "
                    "the engine did in between to explain it"
                )
        elif (problem := model.apply(command)) is not None:
            problems.append(f"{where}: {problem}")
        allowed = model.states()
        if finished_alone and allowed == FREE:
            allowed = allowed | {"COMPLETED"}
        if command.status == "rejected" and command.state_after in TERMINAL:
            allowed = allowed | {command.state_after}  # explained above
        allowed_after.append(allowed)
    # Commands applied in one engine step share their applied_at and the state after
    # the whole step: check each against the model after it or a later one of its step.
    for i, command in enumerate(settled):
        same_step = [
            allowed_after[j]
            for j in range(i, len(settled))
            if settled[j].applied_at == command.applied_at
        ]
        if not any(command.state_after in states for states in same_step):
            problems.append(
                f"seq {command.seq} {command.kind} left the execution {command.state_after}; "
                f"the serial order allows {sorted(set().union(*same_step))}"
            )
    return problems


# -- 409s ------------------------------------------------------------------------------------

CLAIMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("terminal", re.compile(r"^cannot (?P<op>\w+) (?P<state>[a-z ]+) execution \S+$")),
    (
        "stopping",
        re.compile(r"^cannot (?P<op>\w+) execution \S+: it is being cancelled or terminated$"),
    ),
    ("paused", re.compile(r"^execution \S+ is already paused$")),
    ("pausing", re.compile(r"^execution \S+ is already pausing$")),
    (
        "not_paused",
        re.compile(r"^cannot resume execution \S+: it is (?P<state>[A-Z_]+), not paused$"),
    ),
    (
        "not_open",
        re.compile(r"^cannot resume execution \S+: pause point '(?P<pause>[^']+)' is not open"),
    ),
)
LEGAL_CLAIMS = {
    "pause": {"terminal", "stopping", "paused", "pausing"},
    "resume": {"terminal", "stopping", "not_paused", "not_open"},
    "inject": {"terminal", "stopping"},
    "cancel": {"terminal"},
    "terminate": {"terminal"},
}


def _covered(window: tuple[float, float], spans: list[tuple[float, float]]) -> bool:
    """Whether ``spans`` cover every moment of ``window``."""
    start, end = window
    for low, high in sorted(spans):
        if low > start:
            return False
        start = max(start, high)
        if start >= end:
            return True
    return start >= end


@dataclass
class Span:
    """When something was possibly, and surely, the case (client clock)."""

    maybe: tuple[float, float]
    surely: tuple[float, float]


def check_refusals(
    refusals: list[Refusal],
    commands: list[CommandView],
    events: list[EventView],
    final: str,
    timing: dict[str, tuple[float, float]],
) -> list[str]:
    """Each 409 names a state in which its operation is illegal, held while it was in flight.

    A command took effect at some moment between its request going out and its
    reply coming back (``timing``); an event between its timestamp and its
    checkpoint's commit (``COMMIT_LAG`` later).
    """
    inf = float("inf")

    def sent(command: CommandView) -> float:
        return timing[command.id][0] if command.id in timing else seconds(command.created_at)

    def replied(command: CommandView) -> float:
        return timing[command.id][1] if command.id in timing else seconds(command.created_at)

    problems: list[str] = []
    stops = [c for c in commands if c.kind in ("cancel", "terminate")]
    stop_maybe = min((sent(c) for c in stops), default=inf)
    stop_surely = min((replied(c) for c in stops), default=inf)
    ended = [seconds(e.at) for e in events if e.is_terminal]
    terminates = [c for c in commands if c.kind == "terminate"]
    end_maybe = min([*ended, *(sent(c) for c in terminates)], default=inf)

    def closing(pause_id: str) -> tuple[float, float]:
        """When a pause point was possibly and surely closed by a resume or a stop."""
        maybe, surely = stop_maybe, stop_surely
        for later in commands:
            if later.kind == "resume" and later.payload.get("pause_id") == pause_id:
                maybe, surely = min(maybe, sent(later)), min(surely, replied(later))
        for event in events:
            if event.type == "workflow.resumed" and event.data.get("pause_id") == pause_id:
                at = seconds(event.at)
                maybe, surely = min(maybe, at), min(surely, at + COMMIT_LAG)
        for at in ended:
            maybe, surely = min(maybe, at), min(surely, at + COMMIT_LAG)
        return maybe, surely

    spans: dict[str, Span] = {}
    for pause in (c for c in commands if c.kind == "pause"):
        close_maybe, close_surely = closing(pause.id)
        if pause.status == "rejected":
            close_maybe = min(close_maybe, seconds(pause.applied_at))
            close_surely = min(close_surely, seconds(pause.applied_at) + COMMIT_LAG)
        spans[pause.id] = Span((sent(pause), close_surely), (replied(pause), close_maybe))
    for opened in (e for e in events if e.type == "task.paused"):
        pause_id, at = opened.data["pause_id"], seconds(opened.at)
        close_maybe, close_surely = closing(pause_id)
        spans[pause_id] = Span((at, close_surely), (at + COMMIT_LAG, close_maybe))
    holds = [span for pause_id, span in spans.items() if not pause_id.startswith("p-")]

    for refusal in refusals:
        low, high = refusal.sent - CLOCK_SLACK, refusal.replied + CLOCK_SLACK
        found = [(name, m) for name, pattern in CLAIMS if (m := pattern.match(refusal.message))]
        said = f"409 for {refusal.kind}: {refusal.message!r}"
        if not found:
            problems.append(f"{said} does not name a state the contract knows")
            continue
        claim, match = found[0]
        op = match.groupdict().get("op") or refusal.kind
        if claim not in LEGAL_CLAIMS[refusal.kind] or op != refusal.kind:
            problems.append(f"{said}: that state does not forbid a {refusal.kind}")
            continue
        if claim == "terminal":
            state = match["state"].upper().replace(" ", "_")
            if state != final or end_maybe > high:
                problems.append(f"{said}, but it ended {final}, not before the reply")
        elif claim == "stopping" and stop_maybe > high:
            problems.append(f"{said}, but no cancel/terminate was sent before the reply")
        elif claim in ("paused", "pausing") and not any(
            span.maybe[0] <= high and span.maybe[1] >= low for span in holds
        ):
            problems.append(f"{said}, but no pause was held while it was in flight")
        elif claim == "not_paused":
            if match["state"] not in ("QUEUED", "RUNNING"):
                problems.append(f"{said}: {match['state']} cannot be 'not paused'")
            if _covered((low, high), [span.surely for span in spans.values()]):
                problems.append(f"{said}, but a pause point was open all the time it was in flight")
        elif claim == "not_open":
            pause_id = match["pause"]
            surely = [spans[pause_id].surely] if pause_id in spans else []
            if _covered((low, high), surely):
                problems.append(f"{said}, but {pause_id} was open all the time it was in flight")
    return problems


# -- playing a scenario ------------------------------------------------------------------------


class Player:
    """Plays one example against the server; collects what must hold afterwards."""

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients
        self.executions: list[Tracked] = []

    async def start(self, released: list[bool]) -> None:
        for free in released:
            key = gates.new_key("race")
            if free:
                gates.gate(key).release.set()
            reply = await self.clients[0].post(
                "/api/v1/executions",
                json={"namespace": NAMESPACE, "flow_id": "race", "inputs": {"key": key}},
            )
            assert reply.status_code == 201, reply.text
            self.executions.append(Tracked(reply.json()["id"], key))

    async def look(self, tracked: Tracked) -> dict[str, Any]:
        reply = await self.clients[0].get(f"/api/v1/executions/{tracked.id}/state")
        assert reply.status_code == 200, reply.text
        state: dict[str, Any] = reply.json()
        points = state["pause_points"]
        if state["state"] in TERMINAL:
            assert points == [], f"a {state['state']} execution with open pause points: {state}"
        if state["state"] == "PAUSED":
            assert points, f"PAUSED with no pause point: {state}"
        for point in points:
            tracked.pause_ids[point["kind"]] = point["id"]
        return state

    def body(self, op: Op, tracked: Tracked) -> dict[str, Any]:
        tag = uuid.uuid4().hex[:8]
        if op.kind == "inject":
            return {"message": f"note {tag}", "role": ("user", "system")[op.variant % 2]}
        if op.kind == "terminate":
            return {"reason": f"race {tag}"}
        if op.kind == "resume":
            body: dict[str, Any] = {"inputs": RESUME_INPUTS[op.variant]}
            if op.target == "stale":
                body["pause_id"] = "p-never-opened"
            elif op.target in ("task", "manual") and op.target in tracked.pause_ids:
                body["pause_id"] = tracked.pause_ids[op.target]
            return body
        return {"reason": f"race {tag}"} if op.variant % 2 else {}

    async def send(self, op: Op) -> None:
        tracked = self.executions[op.execution % len(self.executions)]
        http = self.clients[op.client]
        if op.kind == "state":
            await self.look(tracked)
            return
        if op.kind == "release":
            gates.gate(tracked.key).release.set()
            return
        if op.kind == "resume" and op.target in ("task", "manual"):
            await self.look(tracked)  # as a person would: read the pause points, answer one
        url = f"/api/v1/executions/{tracked.id}/{op.kind}"
        body = self.body(op, tracked)
        headers = {"Idempotency-Key": uuid.uuid4().hex} if op.twice else {}
        sent = time.time()
        requests = [http.post(url, json=body, headers=headers) for _ in range(2 if op.twice else 1)]
        replies = await asyncio.gather(*requests)
        replied = time.time()
        for reply in replies:
            self.judge(op, tracked, body, reply, sent, replied)
        done = [r.json()["command_id"] for r in replies if r.status_code in (200, 202)]
        assert len(set(done)) <= 1, f"one Idempotency-Key, two commands: {done}"

    def judge(
        self,
        op: Op,
        tracked: Tracked,
        body: dict[str, Any],
        reply: httpx.Response,
        sent: float,
        replied: float,
    ) -> None:
        assert_sane(reply)
        tracked.replies.append(f"{op!r} -> {reply.status_code} {reply.text[:160]}")
        expected_ok = 200 if op.kind == "terminate" else 202
        assert reply.status_code in (expected_ok, 409, 422), (
            f"{op!r}: {reply.status_code} {reply.text}"
        )
        payload = reply.json()
        if reply.status_code == expected_ok:
            assert payload["success"] is True and payload["execution_id"] == tracked.id
            command_id = payload["command_id"]
            tracked.accepted[command_id] = Accepted(command_id, op.kind, tracked.id, body)
            first = tracked.timing.get(command_id, (sent, replied))
            tracked.timing[command_id] = (min(first[0], sent), max(first[1], replied))
        elif reply.status_code == 409:
            assert isinstance(payload["detail"], str) and payload["code"], payload
            tracked.refusals.append(Refusal(op.kind, payload["detail"], sent, replied))
        else:
            assert op.kind == "resume", f"422 for {op!r}: {payload}"
            locs = [tuple(error["loc"]) for error in payload["detail"]]
            named = {("body", "pause_id"), ("body", "inputs")} | {
                ("body", "inputs", name) for name in ("approved", "count", "surplus")
            }
            assert locs and set(locs) <= named, f"422 does not name the field: {payload}"
            assert all(error["msg"] and error["type"] for error in payload["detail"]), payload

    async def batch(self, batch: list[Op]) -> None:
        for tracked in self.executions:
            await self.look(tracked)
        by_client: dict[int, list[Op]] = {}
        for op in batch:
            by_client.setdefault(op.client, []).append(op)

        async def play(ops_of_client: list[Op]) -> None:
            for op in ops_of_client:
                await self.send(op)

        await asyncio.gather(*(play(queue) for queue in by_client.values()))

    async def history(self, tracked: Tracked) -> History:
        """The execution's audit, events and view once no command is pending."""
        http = self.clients[0]

        async def audit() -> list[CommandView]:
            reply = await http.get(f"/api/v1/executions/{tracked.id}/audit")
            assert reply.status_code == 200, reply.text
            return [CommandView.model_validate(c) for c in reply.json()]

        async def settled() -> bool:
            return all(command.status != "pending" for command in await audit())

        # A command still pending after the wait is no error here: the checks below judge it.
        with contextlib.suppress(AssertionError):
            await assert_eventually(settled, what=f"{tracked.id}'s commands to settle")
        commands = await audit()
        events: list[EventView] = []
        while True:
            page = await http.get(
                f"/api/v1/executions/{tracked.id}/events",
                params={"after": events[-1].seq if events else 0, "limit": 1000},
            )
            assert page.status_code == 200, page.text
            events += [EventView.model_validate(e) for e in page.json()["items"]]
            if page.json()["next_after"] is None:
                break
        view = await http.get(f"/api/v1/executions/{tracked.id}")
        assert view.status_code == 200, view.text
        return History(
            spec=SPEC,
            inputs={"key": tracked.key},
            view=ExecutionView.model_validate(view.json()),
            events=events,
            commands=commands,
            accepted=list(tracked.accepted.values()),
        )

    async def check(self, *, finished: bool) -> list[str]:
        problems: list[str] = []
        for tracked in self.executions:
            history = await self.history(tracked)
            found = check_serial_order(history.commands, history.events)
            found += check_refusals(
                tracked.refusals,
                history.commands,
                history.events,
                history.view.state,
                tracked.timing,
            )
            found += check_commands(history)
            if finished:
                found += check_event_log(history)
                found += check_final_state(history)
            if found:
                audit = [
                    f"{c.seq} {c.kind} {c.status} {c.state_before}->{c.state_after} "
                    f"{c.payload.get('pause_id', '')} {c.message or ''}"
                    for c in history.commands
                ]
                problems.append(
                    f"execution {tracked.id} ({history.view.state}):\n  "
                    + "\n  ".join(found)
                    + "\n replies:\n  "
                    + "\n  ".join(tracked.replies)
                    + "\n audit:\n  "
                    + "\n  ".join(audit)
                    + "\n events: "
                    + ", ".join(f"{e.seq}:{e.type}" for e in history.events)
                )
        return problems

    async def finish(self) -> None:
        """Let gated steps go, terminate what still runs, wait until every execution ended."""
        for tracked in self.executions:
            gates.gate(tracked.key).release.set()
            state = await self.look(tracked)
            if state["state"] in TERMINAL:
                continue
            op = Op(0, self.executions.index(tracked), "terminate")
            body = {"reason": "end of the example"}
            sent = time.time()
            reply = await self.clients[0].post(
                f"/api/v1/executions/{tracked.id}/terminate", json=body
            )
            self.judge(op, tracked, body, reply, sent, time.time())
        for tracked in self.executions:

            async def ended(tracked: Tracked = tracked) -> bool:
                return (await self.look(tracked))["state"] in TERMINAL

            await assert_eventually(ended, what=f"{tracked.id} to end")


def check_final_state(history: History) -> list[str]:
    """Cancel and terminate win; otherwise the flow ran to its end."""
    kinds = {c.kind for c in history.commands if c.status == "applied"}
    state = history.view.state
    if "terminate" in kinds:
        expected = {"TERMINATED"}
    elif "cancel" in kinds:
        expected = {"CANCELLED"}
    else:
        expected = {"COMPLETED"}
    return [] if state in expected else [f"ended {state}; applied {sorted(kinds)} mean {expected}"]


async def play(clients: list[httpx.AsyncClient], scenario: Scenario) -> None:
    released, batches = scenario
    player = Player(clients)
    await player.start(released)
    for number, batch in enumerate(batches, 1):
        await player.batch(batch)
        problems = await player.check(finished=False)
        assert not problems, f"after batch {number} of {len(batches)}:\n" + "\n".join(problems)
    await player.finish()
    problems = await player.check(finished=True)
    assert not problems, "once every execution ended:\n" + "\n".join(problems)


@contextlib.asynccontextmanager
async def race_clients(db_path: Path) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with gated_server(db_path) as server:
        await server.engine.as_org("acme").put_flow(RACE_FLOW)
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        clients = [
            httpx.AsyncClient(
                base_url=server.base_url,
                headers=server.headers("acme", "operator"),
                timeout=30,
                limits=limits,
            )
            for _ in range(CLIENTS)
        ]
        try:
            yield clients
        finally:
            for client in clients:
                await client.aclose()


@pytest.mark.timeout(max(120, 6 * EXAMPLES))
async def test_concurrent_control_histories_are_linearizable(tmp_path: Path) -> None:
    async with race_clients(tmp_path / "races.db") as clients:
        loop = asyncio.get_running_loop()

        # Hypothesis runs in a worker thread; each example runs in the server's loop.
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(scenario=scenarios)
        def explore(scenario: Scenario) -> None:
            example = asyncio.run_coroutine_threadsafe(play(clients, scenario), loop)
            try:
                example.result(timeout=60)
            except TimeoutError:
                example.cancel()
                raise

        await asyncio.to_thread(explore)
