"""The invariants a crash storm must not break, checked per execution.

Each check returns human-readable problems (empty when the execution is fine)
so that one failing run reports everything it found, not just the first thing.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pausepoint.models import TERMINAL_EVENT_TYPES, CommandView, EventView, ExecutionView
from tests.chaos.flows import FlowSpec

TERMINAL_TASK_STATES = {"SUCCESS", "WARNING", "FAILED", "CANCELLED", "SKIPPED"}
TASK_END_EVENTS = {"task.completed", "task.failed", "task.cancelled", "task.skipped"}
EXPIRED_PAUSE_OUTCOME = {
    "RESUME": "COMPLETED",
    "WARN": "WARNING",
    "FAIL": "FAILED",
    "CANCEL": "CANCELLED",
}


@dataclass(frozen=True)
class Accepted:
    """A control command the control plane acknowledged (so it must be applied or rejected)."""

    command_id: str
    kind: str
    execution_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class BodyRun:
    """One execution of a task body, as ``chaos_tasks`` logged it when it began."""

    run: str  # execution_id/task_run_id
    attempt: int
    token: str
    pid: int


@dataclass
class History:
    """Everything known about one execution once the storm is over."""

    spec: FlowSpec
    inputs: dict[str, Any]
    view: ExecutionView
    events: list[EventView]
    commands: list[CommandView]
    accepted: list[Accepted]
    bodies: dict[str, list[BodyRun]] = field(default_factory=dict)  # task_run_id -> runs


def read_run_log(path: Path) -> dict[str, list[BodyRun]]:
    """Body runs per ``execution_id/task_run_id``, in the order they began."""
    runs: dict[str, list[BodyRun]] = defaultdict(list)
    if not path.exists():
        return runs
    for line in path.read_text().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue  # a line torn by SIGKILL (never seen with O_APPEND, but harmless)
        runs[data["run"]].append(BodyRun(data["run"], data["attempt"], data["token"], data["pid"]))
    return runs


def expected_state(history: History) -> tuple[set[str], str]:
    """The terminal states the execution's own history allows, and why."""
    applied = [c for c in history.commands if c.status == "applied"]
    kinds = {c.kind for c in applied}
    if "terminate" in kinds:
        return {"TERMINATED"}, "a terminate command was applied"
    if "cancel" in kinds:
        return {"CANCELLED"}, "a cancel command (and no terminate) was applied"
    spec = history.spec
    if spec.kind == "timed_pause":
        paused = [e for e in history.events if e.type == "task.paused"]
        if not paused:
            return set(), "the Pause task never opened although nothing stopped the execution"
        pause_id = paused[0].data["pause_id"]
        if any(c.kind == "resume" and c.payload.get("pause_id") == pause_id for c in applied):
            return {"COMPLETED"}, f"pause {pause_id} was resumed by a command in time"
        assert spec.behavior is not None
        outcome = EXPIRED_PAUSE_OUTCOME[spec.behavior]
        return {outcome}, f"pause {pause_id} expired with behavior {spec.behavior}"
    if spec.kind == "finally":
        if history.inputs.get("fail"):
            return {"FAILED"}, "task boom fails on purpose (inputs.fail)"
        return {"COMPLETED"}, "no command stopped it and no task fails"
    return {"COMPLETED"}, "no command stopped it and no task fails"


def check_final_state(history: History) -> list[str]:
    view = history.view
    problems = []
    allowed, why = expected_state(history)
    if view.state not in allowed:
        problems.append(f"state {view.state}, expected {sorted(allowed)} because {why}")
    runs = {run.task_id: run for run in view.task_runs}
    unfinished = [
        f"{r.id}/{r.task_id}={r.state}"
        for r in view.task_runs
        if r.state not in TERMINAL_TASK_STATES
    ]
    if unfinished:
        problems.append(f"task runs left unfinished in a {view.state} execution: {unfinished}")
    spec = history.spec
    if view.state in ("COMPLETED", "WARNING"):
        missing = [task_id for task_id in spec.task_ids if task_id not in runs]
        if missing:
            problems.append(f"{view.state} but tasks never ran: {missing}")
        wrong = [
            f"{r.task_id}={r.state}"
            for r in view.task_runs
            if r.state != "SUCCESS" and not (view.state == "WARNING" and r.task_id == "wait")
        ]
        if wrong:
            problems.append(f"{view.state} but task runs did not all succeed: {wrong}")
        if view.state == "WARNING" and runs.get("wait") and runs["wait"].state != "WARNING":
            problems.append(f"WARNING but the Pause task ended {runs['wait'].state}")
    if spec.kind == "approval" and view.state == "COMPLETED":
        problems += _check_approval_inputs(history)
    if spec.kind == "finally":
        started = any(e.type == "workflow.started" for e in history.events)
        if started and view.state != "TERMINATED" and "f1" not in runs:
            problems.append(f"{view.state} after it started, but its finally task f1 never ran")
    return problems


def _check_approval_inputs(history: History) -> list[str]:
    resumes = [
        c
        for c in history.commands
        if c.status == "applied" and c.kind == "resume" and c.payload["pause_id"].startswith("p-")
    ]
    if len(resumes) != 1:
        return [f"COMPLETED approval with {len(resumes)} applied resumes of its Pause task"]
    sent = resumes[0].payload["inputs"]
    after = history.view.task_run("after").outputs or {}
    approval = history.view.task_run("approval").outputs or {}
    problems = []
    if approval.get("onResume") != sent:
        problems.append(f"approval outputs onResume {approval.get('onResume')} != resumed {sent}")
    if after.get("prev") != sent:
        problems.append(f"step after saw onResume {after.get('prev')}, the resume sent {sent}")
    return problems


def check_event_log(history: History) -> list[str]:
    events = history.events
    problems = []
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(events) + 1)):
        problems.append(f"event sequence has gaps or duplicates: {seqs}")
    terminal = [i for i, e in enumerate(events) if e.type in TERMINAL_EVENT_TYPES]
    if len(terminal) != 1:
        problems.append(f"{len(terminal)} terminal events: {[events[i].type for i in terminal]}")
    else:
        after = [e.type for e in events[terminal[0] + 1 :] if e.type != "command.rejected"]
        if after:
            problems.append(f"events after the terminal {events[terminal[0]].type}: {after}")
        if _terminal_state(events[terminal[0]]) != history.view.state:
            problems.append(
                f"terminal event {events[terminal[0]].type} {events[terminal[0]].data.get('state')}"
                f" does not match state {history.view.state}"
            )
    starts = Counter(
        (e.data["task_run_id"], e.data["attempt"]) for e in events if e.type == "task.started"
    )
    problems += [f"task.started {key} logged {n} times" for key, n in starts.items() if n > 1]
    ends = Counter(e.data["task_run_id"] for e in events if e.type in TASK_END_EVENTS)
    problems += [f"task run {key} ended {n} times in the log" for key, n in ends.items() if n > 1]
    return problems


def _terminal_state(event: EventView) -> str:
    if event.type == "workflow.completed":
        return str(event.data.get("state"))
    return event.type.removeprefix("workflow.").upper()


def check_recorded_results(history: History) -> list[str]:
    """Outputs announced by ``task.completed`` are the ones stored, and chains are intact."""
    problems = []
    runs = {run.id: run for run in history.view.task_runs}
    for event in history.events:
        if event.type != "task.completed" or "outputs" not in event.data:
            continue
        run = runs.get(event.data["task_run_id"])
        if run is None:
            problems.append(f"task.completed for unknown task run {event.data['task_run_id']}")
        elif run.outputs != event.data["outputs"]:
            problems.append(
                f"{run.id}/{run.task_id}: stored outputs {run.outputs} differ from those its "
                f"task.completed event (seq {event.seq}) recorded: {event.data['outputs']}"
            )
    by_task = {run.task_id: run for run in history.view.task_runs}
    for step, earlier in history.spec.chain:
        if step not in by_task or earlier not in by_task or by_task[step].outputs is None:
            continue
        seen = by_task[step].outputs.get("prev")  # type: ignore[union-attr]
        recorded = (by_task[earlier].outputs or {}).get("token")
        if seen != recorded:
            problems.append(
                f"{step} was called with {earlier}'s token {seen!r} but {earlier} recorded "
                f"{recorded!r}: a recorded result changed after it was used"
            )
    return problems


def check_body_runs(history: History, killed: set[int]) -> list[str]:
    """A task body runs again only after the process running it was killed.

    The token a task run's result carries must come from the *last* time its
    body ran: a body that ran again after its result was recorded would be
    the last one and carry a different token.
    """
    problems = []
    execution_id = history.view.id
    recovered_reruns = Counter(
        run_id
        for e in history.events
        if e.type == "workflow.recovered"
        for run_id in e.data.get("rerun", [])
    )
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
        earlier = bodies[:-1]
        survivors = [b.pid for b in earlier if b.pid not in killed]
        if survivors:
            problems.append(
                f"{run.id}/{run.task_id} ran {len(bodies)} times; an earlier run was in "
                f"worker(s) {survivors} that were never killed"
            )
        per_pid = Counter((b.pid, b.attempt) for b in bodies)
        twice = [key for key, n in per_pid.items() if n > 1]
        if twice:
            problems.append(f"{run.id}/{run.task_id} ran twice in one process: {twice}")
        if len(earlier) > recovered_reruns[run.id]:
            problems.append(
                f"{run.id}/{run.task_id} re-ran {len(earlier)} times but recovery re-issued it "
                f"only {recovered_reruns[run.id]} times"
            )
        token = completed.get(run.id, {}).get("token")
        if token is not None and token != bodies[-1].token:
            problems.append(
                f"{run.id}/{run.task_id}: its recorded result (token {token}) is not from the "
                f"last run of its body (token {bodies[-1].token}, pid {bodies[-1].pid}): the "
                "body ran again after its result was recorded"
            )
    return problems


def check_commands(history: History) -> list[str]:
    """Every accepted command is recorded once, decided once, and took effect once."""
    problems = []
    ids = [c.id for c in history.commands]
    duplicated = [cid for cid, n in Counter(ids).items() if n > 1]
    if duplicated:
        problems.append(f"commands listed more than once: {duplicated}")
    accepted = {a.command_id: a for a in history.accepted}
    unknown = set(ids) - set(accepted)
    lost = set(accepted) - set(ids)
    if unknown:
        problems.append(f"commands nobody sent (or refused ones recorded): {sorted(unknown)}")
    if lost:
        problems.append(f"accepted commands missing from the record: {sorted(lost)}")
    rejected_events = Counter(
        e.data["command_id"] for e in history.events if e.type == "command.rejected"
    )
    injected = Counter(
        e.data.get("command_id") for e in history.events if e.type == "context.injected"
    )
    resumed = Counter(
        e.data.get("pause_id") for e in history.events if e.type == "workflow.resumed"
    )
    context = Counter(m.message for m in history.view.context)
    for command in history.commands:
        where = f"{command.kind} {command.id} ({command.state_before} -> {command.state_after})"
        if command.status == "pending":
            problems.append(f"{where} was accepted but never applied or rejected: lost")
            continue
        if command.status == "rejected":
            if rejected_events[command.id] != 1:
                problems.append(
                    f"{where} rejected ({command.message}) with "
                    f"{rejected_events[command.id]} command.rejected events"
                )
            continue
        if rejected_events[command.id]:
            problems.append(f"{where} applied, yet a command.rejected event names it")
        if command.kind == "inject":
            message: str = command.payload["message"]
            if injected[command.id] != 1 or context[message] != 1:
                problems.append(
                    f"{where} applied: {injected[command.id]} context.injected events, "
                    f"{context[message]} context messages (expected 1 and 1)"
                )
        elif command.kind == "resume" and resumed[command.payload.get("pause_id")] != 1:
            problems.append(
                f"{where} applied: {resumed[command.payload.get('pause_id')]} workflow.resumed "
                f"events for pause {command.payload.get('pause_id')}"
            )
    return problems


def check_history(history: History, killed: set[int]) -> list[str]:
    return [
        *check_final_state(history),
        *check_event_log(history),
        *check_recorded_results(history),
        *check_body_runs(history, killed),
        *check_commands(history),
    ]
