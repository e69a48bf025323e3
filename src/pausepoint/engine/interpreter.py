"""The pure interpreter: ``advance(state, event, env) -> Transition``.

No I/O, no clock, no randomness: every event carries its own timestamp and
the state is plain JSON-serialisable data. The same function drives the
embedded runtime and the Temporal workflow, and is what the property tests
hammer.

``advance`` takes ownership of ``state`` and returns it updated inside the
:class:`Transition` (copy it first with ``copy.deepcopy`` to keep the old one).
Mutating in place keeps the cost of a step independent of how long the
execution has been running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pausepoint.engine.control import admit, view_of
from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.model import (
    TERMINAL_TASK_STATES,
    CancelTask,
    ClearTimer,
    Command,
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
    TaskRunState,
    TaskSucceeded,
    TimerFired,
    Transition,
)
from pausepoint.errors import Conflict, InputValidationError, InvalidInput, TemplateError
from pausepoint.flow.durations import format_duration, parse_duration
from pausepoint.flow.inputs import coerce_inputs
from pausepoint.flow.model import (
    ForEachTask,
    IfTask,
    ParallelTask,
    PauseTask,
    SwitchTask,
    TaskBase,
)
from pausepoint.flow.templates import render, render_condition

S = ExecutionStatus
T = TaskRunState
STATE_VERSION = 1
PHASES = ("main", "errors", "finally")


@dataclass(frozen=True)
class EngineEnv:
    """What the engine reads besides the state: the flow and the secrets.

    Secrets are passed here rather than stored so that no checkpoint holds them.
    """

    index: FlowIndex
    secrets: Mapping[str, str] = field(default_factory=dict)


def iso(at: float) -> str:
    return (
        datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def new_state(
    execution_id: str,
    index: FlowIndex,
    *,
    inputs: dict[str, Any],
    labels: dict[str, str],
    at: float,
) -> dict[str, Any]:
    """The state of a freshly created (QUEUED) execution."""
    flow = index.flow
    return {
        "v": STATE_VERSION,
        "execution_id": execution_id,
        "flow": {"namespace": flow.namespace, "id": flow.id, "revision": flow.revision},
        "status": S.QUEUED.value,
        "inputs": inputs,
        "labels": labels,
        "created_at": at,
        "started_at": None,
        "ended_at": None,
        "phase": "main",
        "outcome": None,
        "error": None,
        "stop": None,
        "checkpoint": None,
        "pause_reason": None,
        "warning": False,
        "blocks": {"main": _block("tasks", len(flow.tasks))},
        "next_run": 1,
        "pauses": {},
        "timers": {},
        "inflight": [],
        "context": {"messages": []},
        "result": None,
        "task_runs": {},
        "outputs": {},
    }


def _block(
    list_path: str | None,
    count: int,
    *,
    parallel: bool = False,
    concurrency: int = 0,
) -> dict[str, Any]:
    return {
        "list": list_path,
        "parallel": parallel,
        "concurrency": concurrency,
        "count": count,
        "next": 0,
        "active": [],
        "failed": None,
    }


def rebuild_outputs(state: dict[str, Any]) -> None:
    """Recompute the ``outputs`` index from the task runs (after loading a checkpoint)."""
    outputs: dict[str, Any] = {}
    for run in state["task_runs"].values():
        if run["state"] in (T.SUCCESS, T.WARNING) and run.get("outputs") is not None:
            _index_output(outputs, run)
    state["outputs"] = outputs


def _index_output(outputs: dict[str, Any], run: dict[str, Any]) -> None:
    if run.get("type") == "iteration":
        return
    if "value" in run:
        outputs.setdefault(run["task_id"], {})[str(run["value"])] = run["outputs"]
    else:
        outputs[run["task_id"]] = run["outputs"]


def advance(state: dict[str, Any], event: Event, env: EngineEnv) -> Transition:
    """Apply one event; return the new state, the actions and the log events."""
    step = _Step(state, env, event.at)
    step.handle(event)
    return step.transition


class _Step:
    """The working context of one ``advance`` call."""

    def __init__(self, state: dict[str, Any], env: EngineEnv, at: float) -> None:
        self.state = state
        self.env = env
        self.index = env.index
        self.at = at
        self.runs: dict[str, dict[str, Any]] = state["task_runs"]
        self.transition = Transition(state)
        self.applied: list[Command] = []

    # -- bookkeeping ---------------------------------------------------------

    @property
    def status(self) -> ExecutionStatus:
        return S(self.state["status"])

    def emit(self, type_: str, **data: Any) -> None:
        self.transition.events.append(LogEvent(type_, self.at, data))

    def act(self, action: Any) -> None:
        self.transition.actions.append(action)

    def touch(self, run: dict[str, Any]) -> None:
        self.transition.changed_task_runs.add(run["id"])

    def set_timer(self, timer_id: str, deadline: float, **info: Any) -> None:
        self.state["timers"][timer_id] = {"deadline": deadline, **info}
        self.act(SetTimer(timer_id, deadline))

    def clear_timer(self, timer_id: str) -> None:
        if self.state["timers"].pop(timer_id, None) is not None:
            self.act(ClearTimer(timer_id))

    def set_status(self, status: ExecutionStatus) -> None:
        self.state["status"] = status.value

    # -- dispatch ------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if self.status.is_terminal:
            if isinstance(event, Command):
                self.on_command(event)  # admission refuses it, naming the state
            return
        if isinstance(event, Started):
            self.on_started()
        elif isinstance(event, Recovered):
            self.on_recovered()
        elif isinstance(event, TaskSucceeded):
            self.on_task_succeeded(event)
        elif isinstance(event, TaskFailed):
            self.on_task_failed(event)
        elif isinstance(event, TaskCancelled):
            self.on_task_cancelled(event)
        elif isinstance(event, TimerFired):
            self.on_timer(event)
        elif isinstance(event, Command):
            self.on_command(event)
        self.drive()
        for command in self.applied:
            self.transition.command_results.append(
                CommandResult(
                    command.id, applied=True, message=f"{command.kind} applied", status=self.status
                )
            )

    def on_started(self) -> None:
        if self.status is S.QUEUED:
            self.begin()

    def begin(self) -> None:
        """First move to RUNNING: arm the execution timeout."""
        self.set_status(S.RUNNING)
        self.state["started_at"] = self.at
        self.emit("workflow.started", inputs=self.redacted_inputs())
        timeout = self.index.flow.timeout
        if timeout:
            self.set_timer("execution", self.at + parse_duration(timeout), kind="execution")

    def redacted_inputs(self) -> dict[str, Any]:
        secret_ids = {spec.id for spec in self.index.flow.inputs if spec.type.upper() == "SECRET"}
        if not secret_ids:
            return dict(self.state["inputs"])
        return _redact(self.state["inputs"], secret_ids)

    def on_recovered(self) -> None:
        """Re-issue in-flight work (at-least-once) and re-arm every durable timer."""
        rerun = []
        for run_id in list(self.state["inflight"]):
            run = self.runs[run_id]
            if self.state["stop"] is not None and not self.can_start():
                # It was being cancelled when the process died: the crash finished the job.
                self.leave_flight(run)
                self.finish_run(run, T.CANCELLED)
            elif run.get("timing_out"):
                self.leave_flight(run)
                self.fail_leaf(run, self.timeout_message(run))
            else:
                spec = self.render_leaf(run)
                if spec is None:
                    self.leave_flight(run)
                else:
                    rerun.append(run_id)
                    self.act(RunTask(run_id, run["attempt"], run["task_id"], run["type"], spec))
        for timer_id, timer in self.state["timers"].items():
            self.act(SetTimer(timer_id, timer["deadline"]))
        if rerun:
            self.emit("workflow.recovered", rerun=rerun)

    # -- task results ----------------------------------------------------------

    def running_attempt(self, run_id: str, attempt: int) -> dict[str, Any] | None:
        """The run if this result belongs to its in-flight attempt; stale results are dropped."""
        run = self.runs.get(run_id)
        if run is None or run_id not in self.state["inflight"] or run["attempt"] != attempt:
            return None
        return run

    def leave_flight(self, run: dict[str, Any]) -> None:
        self.state["inflight"].remove(run["id"])
        self.clear_timer(f"timeout:{run['id']}")

    def on_task_succeeded(self, event: TaskSucceeded) -> None:
        run = self.running_attempt(event.task_run_id, event.attempt)
        if run is None:
            return
        self.leave_flight(run)
        if run.get("timing_out"):
            self.fail_leaf(run, self.timeout_message(run), logs=event.logs)
            return
        self.finish_run(run, T.SUCCESS, outputs=event.outputs, logs=event.logs)

    def on_task_failed(self, event: TaskFailed) -> None:
        run = self.running_attempt(event.task_run_id, event.attempt)
        if run is None:
            return
        self.leave_flight(run)
        error = self.timeout_message(run) if run.get("timing_out") else event.error
        self.fail_leaf(run, error, logs=event.logs)

    def on_task_cancelled(self, event: TaskCancelled) -> None:
        run = self.running_attempt(event.task_run_id, event.attempt)
        if run is None:
            return
        self.leave_flight(run)
        if run.get("timing_out"):
            self.fail_leaf(run, self.timeout_message(run))
        elif self.state["stop"] is not None:
            self.finish_run(run, T.CANCELLED)
        else:
            self.fail_leaf(run, "the task was cancelled")

    def timeout_message(self, run: dict[str, Any]) -> str:
        return f"task '{run['task_id']}' timed out after {self.index.task(run['path']).timeout}"

    def fail_leaf(
        self, run: dict[str, Any], error: str, *, retry: bool = True, logs: list[Any] | None = None
    ) -> None:
        run.pop("timing_out", None)
        task = self.index.task(run["path"])
        policy = task.retry
        if retry and policy and run["attempt"] < policy.max_attempts and self.state["stop"] is None:
            delay = parse_duration(policy.interval)
            if policy.type == "exponential":
                delay *= policy.backoff ** (run["attempt"] - 1)
            if policy.max_interval:
                delay = min(delay, parse_duration(policy.max_interval))
            run["state"] = T.RETRYING.value
            run["error"] = error
            self.touch(run)
            self.set_timer(f"retry:{run['id']}", self.at + delay, kind="retry")
            self.emit(
                "task.retrying",
                task_run_id=run["id"],
                task_id=run["task_id"],
                attempt=run["attempt"],
                error=error,
                retry_at=iso(self.at + delay),
                logs=logs or [],
            )
            return
        self.finish_run(run, T.FAILED, error=error, logs=logs)

    def finish_run(
        self,
        run: dict[str, Any],
        outcome: TaskRunState,
        *,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
        logs: list[Any] | None = None,
    ) -> None:
        """Move a task run to a terminal state and log it."""
        task = self.index.task(run["path"]) if run["type"] != "iteration" else None
        if outcome is T.FAILED and task is not None and task.allow_failure:
            outcome = T.WARNING
        if outcome is T.WARNING:
            self.state["warning"] = True
        run["state"] = outcome.value
        run["ended_at"] = self.at
        if error is not None:
            run["error"] = error
        if outputs is not None:
            run["outputs"] = outputs
            _index_output(self.state["outputs"], run)
        self.touch(run)
        data: dict[str, Any] = {"task_run_id": run["id"], "task_id": run["task_id"]}
        if outcome in (T.SUCCESS, T.WARNING):
            if outputs:
                data["outputs"] = outputs
            if error:
                data["error"] = error
            self.emit("task.completed", state=outcome.value, logs=logs or [], **data)
        elif outcome is T.FAILED:
            self.emit("task.failed", error=error, logs=logs or [], **data)
        elif outcome is T.CANCELLED:
            self.emit("task.cancelled", **data)
        elif outcome is T.SKIPPED:
            self.emit("task.skipped", **data)

    # -- timers ----------------------------------------------------------------

    def on_timer(self, event: TimerFired) -> None:
        timer = self.state["timers"].pop(event.timer_id, None)
        if timer is None:
            return  # cleared before it fired: a resumed pause is never touched again
        kind, _, ref = event.timer_id.partition(":")
        if kind == "execution":
            timeout = self.index.flow.timeout
            self.stop("timeout", by="timer", reason=f"execution timed out after {timeout}")
        elif kind == "retry":
            run = self.runs[ref]
            if run["state"] == T.RETRYING:
                run["state"] = T.CREATED.value
                run["attempt"] += 1
                self.touch(run)
        elif kind == "timeout":
            run = self.runs[ref]
            if ref in self.state["inflight"] and not run.get("timing_out"):
                run["timing_out"] = True
                self.touch(run)
                self.act(CancelTask(ref))
        elif kind == "pause":
            self.on_pause_expired(ref)
        elif kind == "ptimeout":
            pause = self.state["pauses"].get(ref)
            if pause is not None:
                task = self.index.task(pause["task_path"])
                self.fail_pause(pause, f"pause '{task.id}' was not resumed within {task.timeout}")

    def on_pause_expired(self, pause_id: str) -> None:
        pause = self.state["pauses"].get(pause_id)
        if pause is None:
            return
        task = self.index.task(pause["task_path"])
        assert isinstance(task, PauseTask)
        behavior = task.behavior if task.pause_duration else "RESUME"
        waited = format_duration(pause["deadline"] - pause["opened_at"])
        if behavior == "FAIL":
            self.fail_pause(pause, f"pause '{task.id}' was not resumed within {waited}")
        elif behavior == "CANCEL":
            if self.state["stop"] is not None:
                # Already cancelling (a Pause task in `finally`): end just this pause.
                self.close_pause(f"p-{pause['task_run_id']}")
                self.finish_run(self.runs[pause["task_run_id"]], T.CANCELLED)
                return
            self.stop("cancel", by="timer", reason=f"pause '{task.id}' expired after {waited}")
        else:
            try:
                values = coerce_inputs(task.on_resume, {}, loc_prefix=("onResume",))
            except InputValidationError as error:
                self.fail_pause(
                    pause,
                    f"pause '{task.id}' expired after {waited} and cannot resume by itself: "
                    f"{error}",
                )
                return
            self.resume_task_pause(pause, values, by="timer", warn=behavior == "WARN")

    # -- control commands --------------------------------------------------------

    def reject(self, command: Command, message: str) -> None:
        self.transition.command_results.append(
            CommandResult(command.id, applied=False, message=message, status=self.status)
        )
        self.emit("command.rejected", command_id=command.id, kind=command.kind, message=message)

    def on_command(self, command: Command) -> None:
        try:
            command = admit(view_of(self.state), command, self.index)
        except (Conflict, InvalidInput) as error:
            self.reject(command, error.message)
            return
        if command.kind == "pause":
            self.pause(command)
        elif command.kind == "resume":
            self.resume(command)
        elif command.kind == "cancel":
            self.stop("cancel", by=command.by, reason=command.reason)
        elif command.kind == "terminate":
            self.terminate(command)
        elif command.kind == "inject":
            self.inject(command)
        self.applied.append(command)

    def pause(self, command: Command) -> None:
        self.state["pauses"][command.id] = {
            "kind": "manual",
            "opened_at": self.at,
            "by": command.by,
            "reason": command.reason,
        }
        self.state["pause_reason"] = command.reason
        if self.status is S.RUNNING:
            self.set_status(S.PAUSING)
            self.emit("workflow.pausing", pause_id=command.id, by=command.by, reason=command.reason)
        else:  # QUEUED, or PAUSED on Pause tasks: nothing is in flight
            self.land_pause("pre_execution")

    def land_pause(self, checkpoint: str) -> None:
        self.set_status(S.PAUSED)
        self.state["checkpoint"] = checkpoint
        self.emit(
            "workflow.paused",
            checkpoint=checkpoint,
            reason=self.state["pause_reason"],
            pause_ids=list(self.state["pauses"]),
        )

    def resume(self, command: Command) -> None:
        pause_id = command.payload["pause_id"]
        pause = self.state["pauses"][pause_id]
        if pause["kind"] == "manual":
            del self.state["pauses"][pause_id]
            withdrawn = self.status is S.PAUSING
            self.emit(
                "workflow.resumed",
                pause_id=pause_id,
                by=command.by,
                withdrawn=withdrawn,
                reason=command.reason,
            )
            self.state["pause_reason"] = None
            self.state["checkpoint"] = None
            self.set_status(S.RUNNING)
            if self.state["started_at"] is None:
                self.begin()
        else:
            self.resume_task_pause(
                pause | {"id": pause_id}, command.payload["inputs"], by=command.by
            )

    def resume_task_pause(
        self, pause: dict[str, Any], values: dict[str, Any], *, by: str, warn: bool = False
    ) -> None:
        pause_id = pause.get("id") or f"p-{pause['task_run_id']}"
        self.close_pause(pause_id)
        run = self.runs[pause["task_run_id"]]
        task = self.index.task(run["path"])
        assert isinstance(task, PauseTask)
        run["outputs"] = {
            "onResume": values,
            "resumed": {"by": by, "on": iso(self.at), "to": S.RUNNING.value},
        }
        _index_output(self.state["outputs"], run)
        run["state"] = T.RUNNING.value
        if warn:
            run["warn"] = True
        if task.tasks:
            run["block"] = _block(f"{run['path']}.tasks", len(task.tasks))
        self.touch(run)
        secret_ids = {spec.id for spec in task.on_resume if spec.type.upper() == "SECRET"}
        self.emit(
            "workflow.resumed",
            pause_id=pause_id,
            task_id=run["task_id"],
            task_run_id=run["id"],
            by=by,
            inputs=_redact(values, secret_ids),
        )
        if self.status is S.PAUSED and not self.manual_pause_open():
            self.set_status(S.RUNNING)
            self.state["checkpoint"] = None

    def manual_pause_open(self) -> bool:
        return any(p["kind"] == "manual" for p in self.state["pauses"].values())

    def close_pause(self, pause_id: str) -> dict[str, Any]:
        pause: dict[str, Any] = self.state["pauses"].pop(pause_id)
        self.clear_timer(f"pause:{pause_id}")
        self.clear_timer(f"ptimeout:{pause_id}")
        return pause

    def fail_pause(self, pause: dict[str, Any], error: str) -> None:
        run = self.runs[pause["task_run_id"]]
        self.close_pause(f"p-{run['id']}")
        child_id = run.get("on_pause")
        if child_id and child_id in self.state["inflight"]:
            self.state["inflight"].remove(child_id)
            self.act(CancelTask(child_id))
            self.finish_run(self.runs[child_id], T.CANCELLED)
        self.finish_run(run, T.FAILED, error=error)
        if self.status is S.PAUSED and not self.manual_pause_open():
            self.set_status(S.RUNNING)

    def inject(self, command: Command) -> None:
        messages = self.state["context"]["messages"]
        entry = {
            "seq": len(messages) + 1,
            "role": command.payload.get("role", "user"),
            "message": command.payload["message"],
            "by": command.by,
            "at": iso(self.at),
            "command_id": command.id,
        }
        messages.append(entry)
        self.emit("context.injected", **entry)

    def stop(self, kind: str, *, by: str, reason: str | None) -> None:
        """Cancel cooperatively (``kind`` cancel) or because the execution timed out."""
        if self.state["stop"] is not None:
            return  # already stopping: cancel is idempotent
        self.state["stop"] = {
            "kind": kind,
            "by": by,
            "reason": reason,
            "at": self.at,
            "phase": self.state["phase"],
        }
        for pause_id in list(self.state["pauses"]):
            pause = self.close_pause(pause_id)
            if pause["kind"] == "task":
                self.finish_run(self.runs[pause["task_run_id"]], T.CANCELLED)
        for timer_id in list(self.state["timers"]):
            self.clear_timer(timer_id)
        for run in self.runs.values():
            if run["state"] == T.RETRYING:
                self.finish_run(run, T.CANCELLED)
        self.state["pause_reason"] = None
        self.set_status(S.CANCELLING)
        self.emit("workflow.cancelling", by=by, reason=reason, timed_out=kind == "timeout")
        for run_id in self.state["inflight"]:
            self.act(CancelTask(run_id))

    def terminate(self, command: Command) -> None:
        self.state["stop"] = {
            "kind": "terminate",
            "by": command.by,
            "reason": command.reason,
            "at": self.at,
            "phase": self.state["phase"],
        }
        for run_id in self.state["inflight"]:
            self.act(CancelTask(run_id, kill=True))
        self.state["inflight"] = []
        for timer_id in list(self.state["timers"]):
            self.clear_timer(timer_id)
        self.state["pauses"] = {}
        self.cancel_leftovers()
        self.set_status(S.TERMINATED)
        self.state["ended_at"] = self.at
        self.emit("workflow.terminated", by=command.by, reason=command.reason)

    def cancel_leftovers(self) -> None:
        for run in self.runs.values():
            if run["state"] not in TERMINAL_TASK_STATES:
                self.finish_run(run, T.CANCELLED)

    # -- scheduling ------------------------------------------------------------

    def can_start(self) -> bool:
        """May new work start now? False between a pause and its resume."""
        status = self.status
        if status is S.RUNNING:
            return True
        if status is S.CANCELLING:
            stop: dict[str, Any] = self.state["stop"]
            return bool(self.state["phase"] == "finally" and stop["phase"] != "finally")
        return False

    def drive(self) -> None:
        self.drive_phases()
        self.settle()

    def drive_phases(self) -> None:
        state = self.state
        while not self.status.is_terminal and self.status is not S.QUEUED:
            phase = state["phase"]
            stop = state["stop"]
            if stop is not None and (phase != "finally" or stop["phase"] == "finally"):
                if state["inflight"]:
                    return
                self.cancel_leftovers()
                if (
                    phase != "finally"
                    and self.index.flow.finally_
                    and state["started_at"] is not None
                ):
                    self.enter_phase("finally")
                    continue
                self.finish(S.TIMED_OUT if stop["kind"] == "timeout" else S.CANCELLED)
                return
            outcome = self.drive_block(state["blocks"][phase], None)
            if outcome == "running" or not self.can_start():
                return
            if phase == "main":
                if outcome == "failed":
                    state["outcome"] = S.FAILED.value
                    self.enter_phase("errors" if self.index.flow.errors else "finally")
                else:
                    state["outcome"] = S.COMPLETED.value
                    self.enter_phase("finally")
            elif phase == "errors":
                self.enter_phase("finally")
            else:
                if outcome == "failed" and state["outcome"] == S.COMPLETED:
                    state["outcome"] = S.FAILED.value
                if stop is not None:
                    self.finish(S.TIMED_OUT if stop["kind"] == "timeout" else S.CANCELLED)
                else:
                    self.finish(S(state["outcome"]))
                return

    def enter_phase(self, phase: str) -> None:
        tasks = self.index.flow.blocks()[phase]
        self.state["phase"] = phase
        self.state["blocks"][phase] = _block(phase, len(tasks))

    def finish(self, outcome: ExecutionStatus) -> None:
        state = self.state
        for run_id in state["inflight"]:
            self.act(CancelTask(run_id, kill=True))
        state["inflight"] = []
        for timer_id in list(state["timers"]):
            self.clear_timer(timer_id)
        if outcome is S.COMPLETED:
            try:
                state["result"] = render(
                    self.index.flow.outputs, self.variables(None), where="flow outputs"
                )
            except TemplateError as error:
                state["error"] = {"message": str(error)}
                outcome = S.FAILED
            if outcome is S.COMPLETED and state["warning"]:
                outcome = S.WARNING
        state["ended_at"] = self.at
        self.set_status(outcome)
        if outcome in (S.COMPLETED, S.WARNING):
            self.emit("workflow.completed", state=outcome.value, outputs=state["result"] or {})
        elif outcome is S.FAILED:
            self.emit("workflow.failed", error=(state["error"] or {}).get("message"))
        elif outcome is S.CANCELLED:
            stop = state["stop"] or {}
            self.emit("workflow.cancelled", by=stop.get("by"), reason=stop.get("reason"))
        elif outcome is S.TIMED_OUT:
            self.emit("workflow.timed_out", reason=(state["stop"] or {}).get("reason"))

    def settle(self) -> None:
        """Land a pending pause once nothing is in flight; note when only Pause tasks wait."""
        state = self.state
        if state["inflight"]:
            return
        if self.status is S.PAUSING:
            self.land_pause(self.next_checkpoint())
        elif self.status is S.RUNNING and state["pauses"]:
            waiting_retry = any(t.get("kind") == "retry" for t in state["timers"].values())
            if not waiting_retry:
                state["checkpoint"] = "pause_task"
                self.set_status(S.PAUSED)
                self.emit(
                    "workflow.paused",
                    checkpoint="pause_task",
                    reason=None,
                    pause_ids=list(state["pauses"]),
                )

    def next_checkpoint(self) -> str:
        """``pre_completion`` when finishing is all that is left, else ``pre_execution``."""
        phase = self.state["phase"]
        block = self.state["blocks"][phase]
        if block["active"] or block["next"] < block["count"]:
            return "pre_execution"
        flow = self.index.flow
        if phase == "main":
            later = (flow.errors if block["failed"] is not None else []) + flow.finally_
        elif phase == "errors":
            later = flow.finally_
        else:
            later = []
        return "pre_execution" if later else "pre_completion"

    def drive_block(self, block: dict[str, Any], owner: dict[str, Any] | None) -> str:
        """Advance a block of child runs; return ``running``, ``success`` or ``failed``."""
        while True:
            progressed = False
            for child_id in list(block["active"]):
                child = self.runs[child_id]
                self.drive_run(child)
                if child["state"] in TERMINAL_TASK_STATES:
                    block["active"].remove(child_id)
                    progressed = True
                    if child["state"] == T.FAILED and block["failed"] is None:
                        block["failed"] = child_id
            if block["failed"] is None and self.can_start():
                limit = block["concurrency"] if block["parallel"] else 1
                while block["next"] < block["count"] and (
                    limit == 0 or len(block["active"]) < limit
                ):
                    child = self.create_child(block, owner)
                    block["next"] += 1
                    block["active"].append(child["id"])
                    self.start_run(child)
                    progressed = True
            if not progressed:
                break
            if owner is not None:
                self.touch(owner)  # its block changed: the checkpoint must carry it
        if block["active"]:
            return "running"
        if block["failed"] is not None:
            return "failed"
        return "success" if block["next"] >= block["count"] else "running"

    def create_child(self, block: dict[str, Any], owner: dict[str, Any] | None) -> dict[str, Any]:
        position = block["next"]
        run_id = f"t{self.state['next_run']}"
        self.state["next_run"] += 1
        run: dict[str, Any] = {
            "id": run_id,
            "parent": owner["id"] if owner else None,
            "state": T.CREATED.value,
            "attempt": 1,
            "created_at": self.at,
            "started_at": None,
            "ended_at": None,
        }
        if block["list"] is None:  # an iteration of a foreach
            assert owner is not None
            run.update(
                task_id=owner["task_id"],
                path=owner["path"],
                type="iteration",
                value=block["values"][position],
                index=position,
            )
        else:
            path = f"{block['list']}[{position}]"
            task = self.index.task(path)
            run.update(task_id=task.id, path=path, type=task.type)
            if owner is not None and "value" in owner:
                run["value"] = owner["value"]
        self.runs[run_id] = run
        self.touch(run)
        return run

    def start_run(self, run: dict[str, Any]) -> None:
        if run["type"] == "iteration":
            self.mark_started(run)
            run["block"] = _block(
                f"{run['path']}.tasks", len(self.index.task_list(f"{run['path']}.tasks"))
            )
            return
        task = self.index.task(run["path"])
        if task.disabled:
            self.finish_run(run, T.SKIPPED)
            return
        if task.is_leaf:
            self.start_leaf(run)
            return
        try:
            self.start_container(run, task)
        except TemplateError as error:
            self.finish_run(run, T.FAILED, error=str(error))

    def mark_started(self, run: dict[str, Any]) -> None:
        run["state"] = T.RUNNING.value
        run["started_at"] = self.at
        self.touch(run)
        self.emit(
            "task.started",
            task_run_id=run["id"],
            task_id=run["task_id"],
            attempt=run["attempt"],
            type=run["type"],
            **({"value": run["value"]} if "value" in run else {}),
        )

    def render_leaf(self, run: dict[str, Any]) -> dict[str, Any] | None:
        task = self.index.task(run["path"])
        try:
            spec = render(
                self.index.leaf_spec(run["path"]), self.variables(run), where=f"task '{task.id}'"
            )
        except TemplateError as error:
            self.finish_run(run, T.FAILED, error=str(error))
            return None
        return dict(spec)

    def start_leaf(self, run: dict[str, Any]) -> None:
        spec = self.render_leaf(run)
        if spec is None:
            return
        self.mark_started(run)
        self.state["inflight"].append(run["id"])
        self.act(RunTask(run["id"], run["attempt"], run["task_id"], run["type"], spec))
        timeout = self.index.task(run["path"]).timeout
        if timeout:
            self.set_timer(
                f"timeout:{run['id']}", self.at + self.duration(timeout, run), kind="timeout"
            )

    def duration(self, value: str, run: dict[str, Any]) -> float:
        rendered = render(value, self.variables(run), where=f"task '{run['task_id']}'")
        try:
            return parse_duration(str(rendered))
        except ValueError as error:
            raise TemplateError(f"task '{run['task_id']}': {error}") from None

    def start_container(self, run: dict[str, Any], task: TaskBase) -> None:
        path = run["path"]
        if isinstance(task, PauseTask):
            self.start_pause(run, task)
            return
        if isinstance(task, IfTask):
            chosen = (
                "then"
                if render_condition(task.condition, self.variables(run), where=f"task '{task.id}'")
                else "else"
            )
            list_path = f"{path}.{chosen}"
            run["branch"] = chosen
            block = _block(list_path, len(self.index.task_list(list_path)))
        elif isinstance(task, SwitchTask):
            value = render(task.value, self.variables(run), where=f"task '{task.id}'")
            key = _switch_key(value)
            list_path = f"{path}.cases.{key}" if key in task.cases else f"{path}.defaults"
            run["branch"] = key if key in task.cases else "defaults"
            block = _block(list_path, len(self.index.task_list(list_path)))
        elif isinstance(task, ForEachTask):
            values = render(task.values, self.variables(run), where=f"task '{task.id}'")
            if isinstance(values, str):
                try:
                    values = json.loads(values)
                except ValueError:
                    raise TemplateError(
                        f"task '{task.id}': values must be a list or a JSON array, got {values!r}"
                    ) from None
            if not isinstance(values, list):
                raise TemplateError(f"task '{task.id}': values must be a list, got {values!r}")
            block = _block(
                None, len(values), parallel=task.concurrency != 1, concurrency=task.concurrency
            )
            block["values"] = values
        elif isinstance(task, ParallelTask):
            block = _block(
                f"{path}.tasks", len(task.tasks), parallel=True, concurrency=task.concurrency
            )
        else:
            block = _block(f"{path}.tasks", len(self.index.task_list(f"{path}.tasks")))
        run["block"] = block
        self.mark_started(run)

    def start_pause(self, run: dict[str, Any], task: PauseTask) -> None:
        pause_id = f"p-{run['id']}"
        duration = self.duration(task.duration, run) if task.duration else None
        pause: dict[str, Any] = {
            "kind": "task",
            "task_path": run["path"],
            "task_id": task.id,
            "task_run_id": run["id"],
            "opened_at": self.at,
            "deadline": self.at + duration if duration is not None else None,
        }
        timeout = self.duration(task.timeout, run) if task.timeout else None
        self.mark_started(run)
        run["state"] = T.PAUSED.value
        run["pause_id"] = pause_id
        self.state["pauses"][pause_id] = pause
        if duration is not None:
            self.set_timer(f"pause:{pause_id}", self.at + duration, kind="pause")
        if timeout is not None:
            self.set_timer(f"ptimeout:{pause_id}", self.at + timeout, kind="pause_timeout")
        self.emit(
            "task.paused",
            task_run_id=run["id"],
            task_id=task.id,
            pause_id=pause_id,
            deadline=iso(pause["deadline"]) if pause["deadline"] else None,
            behavior=task.behavior if duration is not None else None,
            on_resume=[spec.id for spec in task.on_resume],
        )
        if task.on_pause is not None:
            child = self.create_child(_block(f"{run['path']}.onPause", 1), run)
            run["on_pause"] = child["id"]
            self.start_run(child)

    def drive_run(self, run: dict[str, Any]) -> None:
        state = run["state"]
        if state in TERMINAL_TASK_STATES:
            return
        if run["type"] not in _CONTAINERS:
            if state == T.CREATED and self.can_start():
                self.start_leaf(run)
            return
        on_pause = run.get("on_pause")
        if on_pause is not None:
            child = self.runs[on_pause]
            self.drive_run(child)
            if child["state"] == T.FAILED and run["state"] != T.FAILED:
                pause_id = run.get("pause_id")
                if pause_id in self.state["pauses"]:
                    self.fail_pause(
                        self.state["pauses"][pause_id],
                        f"onPause task '{child['task_id']}' failed: {child['error']}",
                    )
                    return
        if run["state"] == T.PAUSED:
            return
        block = run.get("block")
        outcome = self.drive_block(block, run) if block is not None else "success"
        if outcome == "running":
            return
        if on_pause is not None and self.runs[on_pause]["state"] not in TERMINAL_TASK_STATES:
            return
        if outcome == "failed":
            failed = self.runs[block["failed"]] if block else None
            reason = f"task '{failed['task_id']}' failed" if failed else "failed"
            self.finish_run(run, T.FAILED, error=reason)
        else:
            self.finish_run(
                run, T.WARNING if run.get("warn") else T.SUCCESS, outputs=run.get("outputs")
            )

    # -- templates ---------------------------------------------------------------

    def variables(self, run: dict[str, Any] | None) -> dict[str, Any]:
        state = self.state
        flow = self.index.flow
        variables: dict[str, Any] = {
            "inputs": state["inputs"],
            "outputs": state["outputs"],
            "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
            "execution": {
                "id": state["execution_id"],
                "startDate": iso(self.at if state["started_at"] is None else state["started_at"]),
                "labels": state["labels"],
            },
            "labels": state["labels"],
            "context": state["context"],
            "secrets": self.env.secrets,
        }
        if run is not None:
            variables["task"] = {"id": run["task_id"], "type": run["type"]}
            variables["taskrun"] = {
                "id": f"{state['execution_id']}/{run['id']}",
                "startDate": iso(self.at),
                "attemptsCount": run["attempt"],
                "value": run.get("value"),
            }
        return variables


_CONTAINERS = frozenset({"iteration", "pause", "sequential", "parallel", "if", "switch", "foreach"})


def _switch_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _redact(values: dict[str, Any], secret_ids: set[str]) -> dict[str, Any]:
    redacted: dict[str, Any] = json.loads(json.dumps(values))
    for dotted in secret_ids:
        *parents, leaf = dotted.split(".")
        node: Any = redacted
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict) and leaf in node:
            node[leaf] = "******"
    return redacted
