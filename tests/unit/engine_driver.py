"""A deterministic simulated runtime around the pure engine, for tests.

:class:`Driver` holds an execution's state, a fake clock, the outstanding
``RunTask`` actions and the armed timers, feeds events to
:func:`~pausepoint.engine.interpreter.advance` and records everything the engine
produced. After every step it checks the invariants of the control contract
(ARCHITECTURE.md §2-§4) and raises :class:`InvariantViolation` naming the step
when one does not hold, so that every test using the driver checks them too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.interpreter import EngineEnv, advance, new_state
from pausepoint.engine.model import (
    Action,
    CancelTask,
    ClearTimer,
    Command,
    CommandKind,
    CommandKindName,
    CommandResult,
    Event,
    ExecutionStatus,
    LogEvent,
    Recovered,
    RunTask,
    SetTimer,
    Started,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    Transition,
)
from pausepoint.flow import flow_from_dict, load_flow
from pausepoint.flow.model import Flow

S = ExecutionStatus
LANDING_CHECKPOINTS = frozenset({"pre_execution", "pre_completion", "pause_task"})
CONTAINER_TYPES = frozenset(
    {"iteration", "pause", "sequential", "parallel", "if", "switch", "foreach"}
)


class InvariantViolation(AssertionError):
    """An invariant of the control contract did not hold after a step."""


@dataclass
class Step:
    """One call to ``advance``: the event, what came out, and the status around it."""

    event: Event
    transition: Transition
    before: ExecutionStatus
    after: ExecutionStatus

    @property
    def run_tasks(self) -> list[RunTask]:
        return [a for a in self.transition.actions if isinstance(a, RunTask)]

    def events_of(self, type_: str) -> list[LogEvent]:
        return [e for e in self.transition.events if e.type == type_]


@dataclass
class Outstanding:
    """A ``RunTask`` the simulated runtime is executing."""

    action: RunTask
    cancel_requested: bool = False


@dataclass
class Driver:
    """Drive one execution of ``flow`` through the engine, checking invariants."""

    flow: Flow
    inputs: dict[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    execution_id: str = "ex-1"
    check: bool = True

    def __post_init__(self) -> None:
        self.index = FlowIndex.build(self.flow)
        self.env = EngineEnv(self.index, self.secrets)
        self.now = 1000.0  # not 0.0: a real clock never reads the epoch
        self.state: dict[str, Any] = new_state(
            self.execution_id, self.index, inputs=self.inputs, labels={}, at=self.now
        )
        self.outstanding: dict[str, Outstanding] = {}
        self.timers: dict[str, float] = {}
        self.steps: list[Step] = []
        self.events: list[LogEvent] = []
        self.actions: list[Action] = []
        self.results: list[CommandResult] = []
        self.commands: dict[str, Command] = {}
        self._next_command = 1
        # invariant bookkeeping
        self._started: set[tuple[str, int]] = set()
        self._stopped_by: str | None = None  # "cancel" | "terminate" once applied
        # What a runtime would have stored: only task runs reported as changed.
        self._stored_runs: dict[str, Any] = {}

    # -- construction --------------------------------------------------------------

    @classmethod
    def of(cls, flow: str | Mapping[str, Any] | Flow, **kwargs: Any) -> Driver:
        if isinstance(flow, str):
            flow = load_flow(flow)
        elif not isinstance(flow, Flow):
            flow = flow_from_dict(flow)
        return cls(flow, **kwargs)

    # -- reading -------------------------------------------------------------------

    def status(self) -> ExecutionStatus:
        """The status now (a method, not a property: every step may change it, and mypy
        would otherwise carry a narrowed status across the calls that do)."""
        return S(self.state["status"])

    @property
    def last(self) -> Step:
        return self.steps[-1]

    def event_types(self) -> list[str]:
        return [e.type for e in self.events]

    def events_of(self, type_: str) -> list[LogEvent]:
        return [e for e in self.events if e.type == type_]

    def runs_of(self, task_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.state["task_runs"].values()
            if r["task_id"] == task_id and r["type"] != "iteration"
        ]

    def run_of(self, task_id: str) -> dict[str, Any]:
        runs = self.runs_of(task_id)
        assert len(runs) == 1, f"{len(runs)} runs of task {task_id!r}: {runs}"
        return runs[0]

    def started_task_ids(self) -> list[str]:
        return [e.data["task_id"] for e in self.events_of("task.started")]

    def outstanding_of(self, task_id: str) -> list[RunTask]:
        return [o.action for o in self.outstanding.values() if o.action.task_id == task_id]

    def resolve(self, ref: str) -> RunTask:
        """An outstanding RunTask by task run id or (unique) task id."""
        if ref in self.outstanding:
            return self.outstanding[ref].action
        found = self.outstanding_of(ref)
        assert len(found) == 1, (
            f"{len(found)} outstanding runs of {ref!r}; outstanding: "
            f"{[(o.action.task_run_id, o.action.task_id) for o in self.outstanding.values()]}"
        )
        return found[0]

    @property
    def open_pauses(self) -> list[str]:
        return list(self.state["pauses"])

    def task_pause_id(self, task_id: str) -> str:
        return f"p-{self.run_of(task_id)['id']}"

    # -- feeding events --------------------------------------------------------------

    def feed(self, event: Event) -> Step:
        before = self.status()
        snapshot = _freeze(self.state) if before.is_terminal else None
        inflight_before = list(self.state["inflight"])
        if isinstance(event, Command):
            self.commands[event.id] = event
        transition = advance(self.state, event, self.env)
        assert transition.state is self.state
        step = Step(event, transition, before, self.status())
        self.steps.append(step)
        self.events.extend(transition.events)
        self.actions.extend(transition.actions)
        self.results.extend(transition.command_results)
        self._apply_actions(transition.actions)
        if self.check:
            self._check(step, snapshot, inflight_before)
        return step

    def _apply_actions(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, RunTask):
                self.outstanding[action.task_run_id] = Outstanding(action)
            elif isinstance(action, CancelTask):
                if action.kill:
                    self.outstanding.pop(action.task_run_id, None)
                elif action.task_run_id in self.outstanding:
                    self.outstanding[action.task_run_id].cancel_requested = True
            elif isinstance(action, SetTimer):
                self.timers[action.timer_id] = action.deadline
            elif isinstance(action, ClearTimer):
                self.timers.pop(action.timer_id, None)

    def tick(self, to: float | None = None, by: float = 1.0) -> float:
        """Move the clock forward (never backwards) and return the new time."""
        self.now = max(self.now, to if to is not None else self.now + by)
        return self.now

    def start(self) -> Step:
        return self.feed(Started(self.tick(by=0.0)))

    def recover(self) -> Step:
        """The runtime crashed and reloaded: everything it was running is lost."""
        self.outstanding.clear()
        self.timers.clear()
        return self.feed(Recovered(self.tick()))

    def complete(self, ref: str, outputs: dict[str, Any] | None = None) -> Step:
        action = self.resolve(ref)
        del self.outstanding[action.task_run_id]
        return self.feed(
            TaskSucceeded(action.task_run_id, action.attempt, self.tick(), outputs or {})
        )

    def fail(self, ref: str, error: str = "boom") -> Step:
        action = self.resolve(ref)
        del self.outstanding[action.task_run_id]
        return self.feed(TaskFailed(action.task_run_id, action.attempt, self.tick(), error))

    def ack_cancel(self, ref: str) -> Step:
        action = self.resolve(ref)
        del self.outstanding[action.task_run_id]
        return self.feed(TaskCancelled(action.task_run_id, action.attempt, self.tick()))

    def ack_all_cancels(self) -> list[Step]:
        return [
            self.ack_cancel(run_id)
            for run_id, o in list(self.outstanding.items())
            if o.cancel_requested
        ]

    def fire(self, timer_id: str, at: float | None = None) -> Step:
        """Deliver ``timer_id`` as fired, armed or not (a late or duplicate delivery)."""
        self.timers.pop(timer_id, None)
        return self.feed(TimerFired(timer_id, self.tick(to=at if at is not None else self.now)))

    def fire_due_timers(self, advance_clock_to: float | None = None) -> list[Step]:
        """Advance the clock and fire every armed timer that is due, earliest first."""
        if advance_clock_to is not None:
            self.tick(to=advance_clock_to)
        fired: list[Step] = []
        while True:
            due = sorted((d, t) for t, d in self.timers.items() if d <= self.now)
            if not due:
                return fired
            _, timer_id = due[0]
            del self.timers[timer_id]
            fired.append(self.feed(TimerFired(timer_id, self.now)))

    def fire_next_timer(self) -> Step | None:
        """Jump the clock to the earliest armed timer and fire it."""
        if not self.timers:
            return None
        deadline, timer_id = min((d, t) for t, d in self.timers.items())
        del self.timers[timer_id]
        return self.feed(TimerFired(timer_id, self.tick(to=deadline)))

    def command(
        self,
        kind: CommandKind | CommandKindName,
        *,
        by: str = "tester",
        reason: str | None = None,
        **payload: Any,
    ) -> CommandResult:
        command_id = f"c{self._next_command}"
        self._next_command += 1
        command = Command(
            command_id,
            kind,
            self.tick(),
            by=by,
            reason=reason,
            payload={k: v for k, v in payload.items() if v is not None},
        )
        step = self.feed(command)
        results = [r for r in step.transition.command_results if r.command_id == command_id]
        assert len(results) == 1, f"command {command_id} got {len(results)} results"
        return results[0]

    def pause(self, reason: str | None = None) -> CommandResult:
        return self.command("pause", reason=reason)

    def resume(self, pause_id: str | None = None, **inputs: Any) -> CommandResult:
        return self.command("resume", pause_id=pause_id, inputs=inputs or None)

    def cancel(self, reason: str | None = None) -> CommandResult:
        return self.command("cancel", reason=reason)

    def terminate(self, reason: str = "stop it") -> CommandResult:
        return self.command("terminate", reason=reason)

    def inject(self, message: str, role: str = "user") -> CommandResult:
        return self.command("inject", message=message, role=role)

    def run_until_quiet(self, outputs: dict[str, Any] | None = None, limit: int = 500) -> None:
        """Complete every outstanding task successfully until nothing is outstanding."""
        for _ in range(limit):
            if not self.outstanding:
                return
            run_id, item = next(iter(self.outstanding.items()))
            if item.cancel_requested:
                self.ack_cancel(run_id)
            else:
                self.complete(run_id, outputs)
        raise AssertionError(f"still busy after {limit} steps: {self.outstanding}")

    def drive_to_end(self, limit: int = 1000) -> ExecutionStatus:
        """Complete everything, fire every timer, resume every pause: until terminal."""
        for _ in range(limit):
            if self.status().is_terminal:
                return self.status()
            if self.outstanding:
                self.run_until_quiet(limit=limit)
            elif self.state["pauses"] and self._resume_any():
                continue
            elif self.timers:
                self.fire_next_timer()
            else:
                raise AssertionError(
                    f"stuck in {self.status()}: nothing outstanding, no timer, and no open "
                    f"pause can be resumed (open: {self.open_pauses}); "
                    f"inflight={self.state['inflight']}"
                )
        raise AssertionError(f"not terminal after {limit} steps: {self.status()}")

    def _resume_any(self) -> bool:
        return any(self.resume(pause_id).applied for pause_id in list(self.state["pauses"]))

    # -- invariants -----------------------------------------------------------------

    def _fail(self, step: Step, message: str) -> None:
        raise InvariantViolation(
            f"step {len(self.steps)} ({step.event!r}; {step.before} -> {step.after}): {message}"
        )

    def _check(self, step: Step, snapshot: str | None, inflight_before: list[str]) -> None:
        state = self.state
        transition = step.transition
        run_tasks = step.run_tasks
        events = transition.events
        is_recovery = isinstance(step.event, Recovered)

        # A checkpoint writes only the task runs reported as changed: the stored copy
        # must equal the live state, or a process taking over would resume from a lie.
        for run_id in transition.changed_task_runs:
            self._stored_runs[run_id] = copy.deepcopy(state["task_runs"][run_id])
        if self._stored_runs != state["task_runs"]:
            stale = sorted(
                rid for rid, run in state["task_runs"].items() if self._stored_runs.get(rid) != run
            )
            self._fail(step, f"task runs changed without being reported: {stale}")

        # A terminal status never changes, and nothing comes out of a terminal execution.
        if step.before.is_terminal:
            if _freeze(state) != snapshot:
                self._fail(step, "state changed after the execution became terminal")
            if transition.actions:
                self._fail(step, f"actions after terminal: {transition.actions}")
            if [e for e in events if e.type != "command.rejected"]:
                self._fail(step, f"events after terminal: {events}")

        # Nothing new starts while pausing, paused or cancelling (finally and then
        # afterExecution tasks excepted).
        rerun = {rid for rid in inflight_before} if is_recovery else set()
        fresh = [a for a in run_tasks if a.task_run_id not in rerun]
        if step.after in (S.PAUSING, S.PAUSED) and fresh:
            self._fail(step, f"RunTask emitted while {step.after}: {fresh}")
        if step.after is S.CANCELLING:
            for action in run_tasks:
                path = state["task_runs"][action.task_run_id]["path"]
                in_finally = (state["phase"] == "finally" and path.startswith("finally[")) or (
                    state["phase"] == "after" and path.startswith("afterExecution[")
                )
                cancelled_too = any(
                    isinstance(a, CancelTask) and a.task_run_id == action.task_run_id
                    for a in transition.actions
                )
                if not in_finally and not cancelled_too:
                    self._fail(step, f"RunTask for {path} while CANCELLING: {action}")
        if step.after is S.PAUSED:
            leaf_starts = [
                e
                for e in events
                if e.type == "task.started" and e.data["type"] not in CONTAINER_TYPES
            ]
            if leaf_starts:
                self._fail(step, f"leaf task started while paused: {leaf_starts}")
        if step.after.is_terminal and run_tasks:
            self._fail(step, f"RunTask in the step that finished the execution: {run_tasks}")

        # A pause lands only at a checkpoint, with nothing in flight.
        for event in events:
            if event.type == "workflow.paused" and (
                event.data.get("checkpoint") not in LANDING_CHECKPOINTS
            ):
                self._fail(step, f"workflow.paused at bad checkpoint: {event.data}")
        if any(e.type == "workflow.paused" for e in events) and step.after is not S.PAUSED:
            self._fail(step, "workflow.paused emitted but the step did not end PAUSED")
        if (
            step.after is S.PAUSED
            and step.before is not S.PAUSED
            and not any(e.type == "workflow.paused" for e in events)
        ):
            self._fail(step, "became PAUSED without a workflow.paused event")
        if step.after is S.PAUSED:
            if state["inflight"]:
                self._fail(step, f"PAUSED with work in flight: {state['inflight']}")
            if state["checkpoint"] not in LANDING_CHECKPOINTS:
                self._fail(step, f"PAUSED with checkpoint {state['checkpoint']!r}")
            if not state["pauses"]:
                self._fail(step, "PAUSED with no open pause point")
        if step.after is S.PAUSING and not any(
            p["kind"] == "manual" for p in state["pauses"].values()
        ):
            self._fail(step, "PAUSING with no manual pause open")

        # Every command gets exactly one result, once across the whole history.
        if isinstance(step.event, Command):
            mine = [r for r in transition.command_results if r.command_id == step.event.id]
            if len(mine) != 1:
                self._fail(step, f"command got {len(mine)} results: {mine}")
        elif transition.command_results:
            self._fail(step, f"command results without a command: {transition.command_results}")
        seen_ids = [r.command_id for r in self.results]
        if len(seen_ids) != len(set(seen_ids)):
            self._fail(step, f"a command got two results across history: {seen_ids}")
        for result in transition.command_results:
            if result.status is not step.after:
                self._fail(step, f"result reports {result.status}, state is {step.after}")

        # Terminate takes effect at once; after cancel, no pause/resume/inject applies
        # (except resuming a Pause task in `finally`, which the cancel itself runs).
        for result in transition.command_results:
            if not result.applied:
                continue
            kind = self.commands[result.command_id].kind
            if kind == "terminate":
                if step.after is not S.TERMINATED:
                    self._fail(step, f"terminate applied but status is {step.after}")
                self._stopped_by = "terminate"
            elif kind == "cancel":
                self._stopped_by = self._stopped_by or "cancel"
            elif (
                kind == "resume"
                and self._stopped_by == "cancel"
                and self.state["phase"] == "finally"
            ):
                # The one exception: a Pause task in `finally` opened while cancelling.
                continue
            elif self._stopped_by is not None:
                self._fail(step, f"{kind} applied after {self._stopped_by} was applied")

        # A task attempt starts once.
        for event in events:
            if event.type == "task.started":
                key = (event.data["task_run_id"], event.data["attempt"])
                if key in self._started:
                    self._fail(step, f"task.started twice for {key}")
                self._started.add(key)

        # The runtime's view matches the engine's.
        for run_id in state["inflight"]:
            run = state["task_runs"][run_id]
            if run["state"] != "RUNNING" or run["type"] in CONTAINER_TYPES:
                self._fail(step, f"in-flight run {run_id} is {run['type']} {run['state']}")
            if run_id not in self.outstanding:
                self._fail(step, f"in-flight run {run_id} was never handed to the runtime")
            if self.outstanding[run_id].action.attempt != run["attempt"]:
                self._fail(step, f"in-flight run {run_id} attempt mismatch")
        armed = {k: v["deadline"] for k, v in state["timers"].items()}
        if armed != self.timers:
            self._fail(step, f"timers in state {armed} != armed timers {self.timers}")
        if len(state["inflight"]) != len(set(state["inflight"])):
            self._fail(step, f"duplicate in-flight ids: {state['inflight']}")
        # A successful end never skips work: no task run was cancelled on the way there
        # (except an onPause hook cut short when its Pause task ended).
        if step.after in (S.COMPLETED, S.WARNING) and not step.before.is_terminal:
            runs = state["task_runs"]
            for run in runs.values():
                parent = runs.get(run["parent"]) if run["parent"] else None
                hook = parent is not None and parent.get("on_pause") == run["id"]
                if run["state"] == "CANCELLED" and not hook:
                    self._fail(
                        step, f"{step.after} with task run {run['id']} ({run['task_id']}) CANCELLED"
                    )
        if step.after.is_terminal and (state["inflight"] or state["timers"] or state["pauses"]):
            self._fail(step, "terminal with work, timers or pauses left")


def _freeze(state: dict[str, Any]) -> str:
    return json.dumps(copy.deepcopy(state), sort_keys=True, default=str)
