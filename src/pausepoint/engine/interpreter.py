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
import zlib
from typing import Any

from pausepoint.engine import agent, approvals, retries, sla
from pausepoint.engine.control import admit, view_of
from pausepoint.engine.model import (
    TERMINAL_TASK_STATES,
    CancelTask,
    Command,
    CommandKind,
    CommandResult,
    Event,
    ExecutionStatus,
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
from pausepoint.engine.scheduler import EXIT_OUTCOMES, Scheduler, truthy
from pausepoint.engine.state import (
    CallbackRecord,
    ContextEntry,
    EngineEnv,
    ExitRequest,
    PausePoint,
    StateData,
    Stop,
    StopKind,
    TaskRun,
    index_output,
    iso,
    new_block,
    new_state,
    read_timer,
    rebuild_outputs,
    redact_secret_inputs,
    secret_input_values,
    subflow_wait_id,
    timer_id_of,
)
from pausepoint.errors import (
    Conflict,
    Forbidden,
    InputValidationError,
    InvalidInput,
    TemplateError,
)
from pausepoint.flow.durations import format_duration, is_template, parse_duration
from pausepoint.flow.inputs import coerce_inputs
from pausepoint.flow.model import (
    AssertTask,
    ExitTask,
    FailTask,
    LabelsTask,
    PauseTask,
    SetVariablesTask,
    SleepTask,
    SubflowTask,
    TaskBase,
    UnsetVariablesTask,
)
from pausepoint.flow.templates import render

S = ExecutionStatus
T = TaskRunState

QUEUE_PAUSE = "queue"
"""The id of the pause point that holds an execution waiting for a concurrency slot."""


__all__ = ["EngineEnv", "advance", "iso", "new_state", "rebuild_outputs"]


def advance(state: StateData, event: Event, env: EngineEnv) -> Transition:
    """Apply one event; return the new state, the actions and the log events."""
    step = _Step(state, env, event.at)
    step.handle(event)
    return step.transition


class _Step(Scheduler):
    """The working context of one ``advance`` call: event handlers and control."""

    # -- dispatch ------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if self.status.is_terminal:
            if isinstance(event, Command):
                self.on_command(event)  # admission refuses it, naming the state
            return
        sla.arm(self)
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
        sla.check_assertions(self)  # on the execution as this event changed it
        self.drive()
        for command in self.applied:
            self.transition.command_results.append(
                CommandResult(
                    command.id, applied=True, message=f"{command.kind} applied", status=self.status
                )
            )

    def on_started(self) -> None:
        if self.status is not S.QUEUED:
            return
        admission = self.state.pop("admission", None)
        if admission is None:
            self.begin()
        elif admission["behavior"] == "QUEUE":
            self.state["pauses"][QUEUE_PAUSE] = {
                "kind": "queue",
                "opened_at": self.at,
                "reason": admission["reason"],
            }
            self.emit("workflow.queued", reason=admission["reason"], pause_id=QUEUE_PAUSE)
        elif admission["behavior"] == "CANCEL":
            self.state["stop"] = {
                "kind": "cancel",
                "by": "concurrency",
                "reason": admission["reason"],
                "at": self.at,
                "phase": "main",
            }
            self.finish(S.CANCELLED)
        else:
            self.state["error"] = {"message": admission["reason"]}
            self.finish(S.FAILED)

    def begin(self) -> None:
        """First move to RUNNING: arm the execution timeout."""
        self.set_status(S.RUNNING)
        self.state["started_at"] = self.at
        self.emit("workflow.started", inputs=self.redacted_inputs())
        timeout = self.index.flow.timeout
        if timeout:
            self.set_timer("execution", self.at + parse_duration(timeout))

    def redacted_inputs(self) -> dict[str, Any]:
        return dict(redact_secret_inputs(self.index.flow.inputs, self.state["inputs"]))

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
        # Earliest first: timers that fell due meanwhile act in deadline order.
        for timer_id, timer in sorted(
            self.state["timers"].items(), key=lambda item: item[1]["deadline"]
        ):
            self.act(SetTimer(timer_id, timer["deadline"]))
        if rerun:
            self.emit("workflow.recovered", rerun=rerun)

    # -- task results ----------------------------------------------------------

    def running_attempt(self, run_id: str, attempt: int) -> TaskRun | None:
        """The run if this result belongs to its in-flight attempt; stale results are dropped."""
        run = self.runs.get(run_id)
        if run is None or run_id not in self.state["inflight"] or run["attempt"] != attempt:
            return None
        return run

    def leave_flight(self, run: TaskRun) -> None:
        self.state["inflight"].remove(run["id"])
        self.clear_timer(timer_id_of("timeout", run["id"]))

    def on_task_succeeded(self, event: TaskSucceeded) -> None:
        run = self.running_attempt(event.task_run_id, event.attempt)
        if run is None:
            return
        self.leave_flight(run)
        if run.get("timing_out"):
            self.fail_leaf(run, self.timeout_message(run), logs=event.logs)
            return
        if run["type"] == "retry_execution":
            retries.retried(self, run, event.outputs)
            return
        task = self.index.task(run["path"])
        if isinstance(task, SubflowTask) and task.wait:
            self.wait_for_child(run, task, event)
            return
        # finish_run masks what the task reports before anything records it.
        policy = task.retry
        retried = run["attempt"] > 1 and policy is not None and policy.warning_on_retry
        self.finish_run(
            run, T.WARNING if retried else T.SUCCESS, outputs=event.outputs, logs=event.logs
        )

    def on_task_failed(self, event: TaskFailed) -> None:
        run = self.running_attempt(event.task_run_id, event.attempt)
        if run is None:
            return
        self.leave_flight(run)
        error = self.timeout_message(run) if run.get("timing_out") else event.error
        if run["type"] == "retry_execution":
            retries.not_retried(self, run, self.mask(error))
            return
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

    # -- subflows ----------------------------------------------------------------

    def wait_for_child(self, run: TaskRun, task: SubflowTask, event: TaskSucceeded) -> None:
        """The child execution started: wait for its end on a ``subflow`` pause point.

        The run stays RUNNING and the execution too: the child's end comes back
        as a resume of this pause point sent by the control plane (see
        ``service/subflows.py``).
        """
        child = str(event.outputs["executionId"])
        pause_id = subflow_wait_id(run["id"])
        self.state["pauses"][pause_id] = {
            "kind": "subflow",
            "task_path": run["path"],
            "task_id": run["task_id"],
            "task_run_id": run["id"],
            "opened_at": self.at,
            "child": child,
        }
        run["outputs"] = {"executionId": child}
        index_output(self.state["outputs"], run)
        self.touch(run)
        if task.timeout:
            began = run["started_at"] if run["started_at"] is not None else self.at
            deadline = began + self.duration(task.timeout, run)
            self.set_timer("pause_timeout", deadline, pause_id=pause_id)
        self.emit(
            "subflow.started",
            task_run_id=run["id"],
            task_id=run["task_id"],
            pause_id=pause_id,
            execution_id=child,
            logs=self.mask(event.logs),
        )

    def end_child_wait(self, pause_id: str, pause: PausePoint, child: dict[str, Any]) -> None:
        """The child ended: its subflow task ends accordingly (Kestra's ``transmitFailed``).

        ``child`` is ``{id, state, outputs}`` (``error`` when its outputs could
        not be read). A child that failed, was cancelled, terminated or timed out
        fails the task with ``transmitFailed``: the parent never goes on as if
        it had succeeded.
        """
        self.close_pause(pause_id)
        run = self.runs[pause["task_run_id"]]
        task = self.index.task(run["path"])
        assert isinstance(task, SubflowTask)
        ended = str(child["state"])
        outputs = {
            "executionId": child["id"],
            "state": ended,
            "outputs": child.get("outputs") or {},
        }
        self.emit(
            "subflow.ended",
            task_run_id=run["id"],
            task_id=run["task_id"],
            pause_id=pause_id,
            execution_id=child["id"],
            state=ended,
        )
        where = f"subflow execution {child['id']} of {task.namespace}.{task.flow_id}"
        if child.get("error"):
            self.finish_run(run, T.FAILED, error=f"{where}: {child['error']}", outputs=outputs)
        elif ended == S.COMPLETED or not task.transmit_failed:
            self.finish_run(run, T.SUCCESS, outputs=outputs)
        elif ended == S.WARNING:
            self.finish_run(run, T.WARNING, outputs=outputs)
        else:
            self.finish_run(run, T.FAILED, error=f"{where} ended {ended}", outputs=outputs)
        self.run_again_unless_held()

    def child_timed_out(self, pause_id: str, pause: PausePoint) -> None:
        """A subflow task's ``timeout`` passed while its child ran: the task fails.

        The child is no longer waited for; the control plane cancels it.
        """
        self.close_pause(pause_id)
        run = self.runs[pause["task_run_id"]]
        task = self.index.task(run["path"])
        self.finish_run(
            run,
            T.FAILED,
            error=f"task '{task.id}' timed out after {task.timeout} waiting for subflow "
            f"execution {pause.get('child')}",
        )
        self.run_again_unless_held()

    def timeout_message(self, run: TaskRun) -> str:
        return f"task '{run['task_id']}' timed out after {self.index.task(run['path']).timeout}"

    def fail_leaf(
        self, run: TaskRun, error: str, *, retry: bool = True, logs: list[Any] | None = None
    ) -> None:
        run.pop("timing_out", None)
        error, logs = self.mask(error), self.mask(logs)
        task = self.index.task(run["path"])
        delay = self.retry_delay(run, task) if retry and self.state["stop"] is None else None
        if delay is not None:
            if task.retry is not None and task.retry.behavior == "CREATE_NEW_EXECUTION":
                run["new_execution"] = "waiting"
            self.wait_to_retry(run, delay, error, logs)
            return
        self.finish_run(run, T.FAILED, error=error, logs=logs)

    def retry_delay(self, run: TaskRun, task: TaskBase) -> float | None:
        """How long until the next attempt of a failed run, or None when it must not retry."""
        policy = task.retry
        if policy is None:
            return None
        attempt, since = run["attempt"], run["created_at"]
        if policy.behavior == "CREATE_NEW_EXECUTION":
            # Attempts are executions, counted from the first one (Kestra's metadata).
            attempt, since = retries.new_execution_attempt(self)
        attempts = policy.attempts
        if attempts is not None and attempt >= attempts:
            return None
        if policy.type == "random":
            low = parse_duration(policy.min_interval or "PT0S")
            high = parse_duration(policy.max_interval or "PT0S")
            # Drawn from the run and attempt, not a random source: a replay waits the same.
            seed = zlib.crc32(f"{self.state['execution_id']}/{run['id']}/{attempt}".encode())
            delay = low + (high - low) * (seed / 0xFFFFFFFF)
        else:
            delay = parse_duration(policy.interval)
            if policy.type == "exponential":
                delay *= policy.backoff ** (attempt - 1)
            if policy.max_interval:
                delay = min(delay, parse_duration(policy.max_interval))
        if policy.max_duration and self.at + delay > since + parse_duration(policy.max_duration):
            return None
        return delay

    # -- tasks the engine does itself ---------------------------------------------

    def run_in_engine(self, run: TaskRun, task: TaskBase) -> None:
        where = f"task '{task.id}'"
        if isinstance(task, FailTask):
            failing = task.condition is None or truthy(
                render(task.condition, self.variables(run), where=f"{where} condition")
            )
            if failing:
                message = render(task.error_message, self.variables(run), where=where)
                self.fail_leaf(run, str(message))  # its retry, if any, applies
            else:
                self.finish_run(run, T.SUCCESS)
        elif isinstance(task, AssertTask):
            variables = self.variables(run)
            failed = [
                str(condition)
                for position, condition in enumerate(task.conditions)
                if not truthy(render(condition, variables, where=f"{where} conditions[{position}]"))
            ]
            if failed:
                count = f"{len(failed)} assertion{'s' if len(failed) > 1 else ''} failed"
                message = task.error_message or f"{count}: {'; '.join(failed)}"
                self.fail_leaf(run, str(render(message, variables, where=where)))
            else:
                self.finish_run(run, T.SUCCESS)
        elif isinstance(task, SleepTask):
            self.set_timer(
                "sleep", self.at + self.duration(task.duration, run), task_run_id=run["id"]
            )
        elif isinstance(task, SetVariablesTask | UnsetVariablesTask):
            current = dict(self.state.get("variables", self.index.flow.variables))
            if isinstance(task, SetVariablesTask):
                values = render(task.variables, self.variables(run), where=where)
                for name, value in values.items():
                    if task.overwrite or name not in current:
                        current[name] = value
            else:
                for name in task.variables:
                    current.pop(name, None)
            self.state["variables"] = current
            self.finish_run(run, T.SUCCESS)
        elif isinstance(task, LabelsTask):
            self.set_labels(run, self.rendered_labels(run, task))
        elif isinstance(task, ExitTask):
            state = str(render(task.state, self.variables(run), where=where)).strip().upper()
            if state not in EXIT_OUTCOMES:
                raise TemplateError(f"{where}: {state!r} is not an exit state")
            self.exit(run, state)

    def rendered_labels(self, run: TaskRun, task: LabelsTask) -> list[tuple[Any, Any]]:
        """The (key, value) pairs a Labels task sets: keys and values rendered.

        ``labels`` is a mapping, ``[{key, value}]`` pairs, or a template
        rendering to a JSON object (Kestra accepts all three).
        """
        variables = self.variables(run)
        where = f"task '{task.id}'"
        raw: Any = task.labels
        if isinstance(raw, str):
            raw = render(raw, variables, where=where)
            if isinstance(raw, str):
                try:
                    raw = json.loads(raw)
                except ValueError:
                    raise TemplateError(f"{where}: labels {raw!r} is not a JSON object") from None
        if isinstance(raw, dict):
            return [
                (render(key, variables, where=where), render(value, variables, where=where))
                for key, value in raw.items()
            ]
        if isinstance(raw, list):
            return [
                (
                    render(item.get("key"), variables, where=where),
                    render(item.get("value"), variables, where=where),
                )
                for item in raw
                if isinstance(item, dict)
            ]
        raise TemplateError(f"{where}: labels must be a mapping or key/value pairs, got {raw!r}")

    def set_labels(self, run: TaskRun, pairs: list[tuple[Any, Any]]) -> None:
        """Set labels (a later pair wins); a value that is not text, a number or a boolean fails."""
        changed: dict[str, str] = {}
        for key, value in pairs:
            if isinstance(value, dict | list) or value is None:
                raise TemplateError(
                    f"task '{run['task_id']}': label {key!r} needs a text value, got {value!r}"
                )
            if key in (None, "") or value == "":
                continue  # Kestra skips labels with an empty key or value
            changed[str(key)] = json.dumps(value) if isinstance(value, bool) else str(value)
        self.state["labels"].update(changed)
        self.emit("execution.labeled", labels=changed, task_id=run["task_id"])
        self.finish_run(run, T.SUCCESS)

    def exit(
        self, run: TaskRun, state: str, *, reason: str | None = None, run_finally: bool = False
    ) -> None:
        """Kestra's Exit: this run and its parents end in ``state``, then the execution does.

        ``KILLED`` kills what is running and ends it now. Any other state starts
        nothing new and lets what runs finish (as Kestra leaves it running),
        then ends the execution (see ``Scheduler.end_exit``).
        """
        run_state, _ = EXIT_OUTCOMES[state]
        by = f"task '{run['task_id']}'"
        current: TaskRun | None = run
        while current is not None:
            if current["state"] not in TERMINAL_TASK_STATES:
                error = f"exited with {state}" if run_state is T.FAILED else None
                self.finish_run(current, run_state, error=error)
            current = self.runs[current["parent"]] if current["parent"] else None
        request: ExitRequest = {"state": state, "by": by}
        if reason is not None:
            request["reason"] = reason
        if run_finally:
            request["run_finally"] = True
        self.state["exit"] = request
        if state != "KILLED":
            return
        # Runs started in this very step never reached a runtime: dropped, not killed.
        unsent = {
            action.task_run_id for action in self.transition.actions if isinstance(action, RunTask)
        }
        self.transition.actions = [
            action
            for action in self.transition.actions
            if not (isinstance(action, RunTask) and action.task_run_id in unsent)
        ]
        for run_id in self.state["inflight"]:
            if run_id not in unsent:
                self.act(CancelTask(run_id, kill=True))
        self.state["inflight"] = []
        if not self.end_exit():
            self.drive_phases()

    # -- timers ----------------------------------------------------------------

    def on_timer(self, event: TimerFired) -> None:
        stored = self.state["timers"].pop(event.timer_id, None)
        if stored is None:
            return  # cleared before it fired: a resumed pause is never touched again
        timer = read_timer(event.timer_id, stored)
        kind = timer["kind"]
        if kind == "execution":
            timeout = self.index.flow.timeout
            self.stop("timeout", by="timer", reason=f"execution timed out after {timeout}")
        elif kind == "retry":
            run = self.runs[timer["task_run_id"]]
            if run["state"] == T.RETRYING:
                retries.retry_due(self, run)
        elif kind == "timeout":
            run_id = timer["task_run_id"]
            run = self.runs[run_id]
            if run_id in self.state["inflight"] and not run.get("timing_out"):
                run["timing_out"] = True
                self.touch(run)
                self.act(CancelTask(run_id))
        elif kind == "sleep":
            run = self.runs[timer["task_run_id"]]
            if run["state"] == T.RUNNING:
                self.finish_run(run, T.SUCCESS)
        elif kind == "wait":
            run = self.runs[timer["task_run_id"]]
            if run.get("waiting") and run["state"] == T.RUNNING:
                self.next_pass(run)
        elif kind == "sla":
            sla.on_deadline(self, timer["sla"])
        elif kind == "pause":
            self.on_pause_expired(timer["pause_id"])
        elif kind == "heartbeat":
            pause = self.state["pauses"].get(timer["pause_id"])
            if pause is not None:
                task = self.index.task(pause["task_path"])
                assert isinstance(task, PauseTask)
                self.fail_pause(
                    pause, f"pause '{task.id}' got no heartbeat within {task.heartbeat_timeout}"
                )
        elif kind == "pause_timeout":
            pause = self.state["pauses"].get(timer["pause_id"])
            if pause is not None and pause["kind"] == "subflow":
                self.child_timed_out(timer["pause_id"], pause)
            elif pause is not None:
                task = self.index.task(pause["task_path"])
                self.fail_pause(pause, f"pause '{task.id}' was not resumed within {task.timeout}")

    def on_pause_expired(self, pause_id: str) -> None:
        pause = self.state["pauses"].get(pause_id)
        if pause is None:
            return
        if pause["kind"] == "decision":
            approvals.expire(self, pause_id)
            return
        task = self.index.task(pause["task_path"])
        assert isinstance(task, PauseTask)
        behavior = task.behavior if task.pause_duration else "RESUME"
        if is_template(behavior):
            run = self.runs[pause["task_run_id"]]
            behavior = str(render(behavior, self.variables(run), where=f"task '{task.id}'"))
            if behavior not in ("RESUME", "WARN", "FAIL", "CANCEL"):
                self.fail_pause(
                    pause,
                    f"pause '{task.id}': behavior {behavior!r} is not RESUME, WARN, FAIL or CANCEL",
                )
                return
        deadline = pause["deadline"]
        assert deadline is not None  # its timer is armed only with a deadline
        waited = format_duration(deadline - pause["opened_at"])
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
            self.resume_task_pause(pause_id, pause, values, by="timer", warn=behavior == "WARN")

    # -- control commands --------------------------------------------------------

    def reject(self, command: Command, message: str) -> None:
        self.transition.command_results.append(
            CommandResult(command.id, applied=False, message=message, status=self.status)
        )
        self.emit(
            "command.rejected", command_id=command.id, kind=command.kind.value, message=message
        )

    def on_command(self, command: Command) -> None:
        self.cause = command.traceparent
        try:
            command = admit(view_of(self.state), command, self.index)
        except (Conflict, Forbidden, InvalidInput) as error:
            self.reject(command, error.message)
            return
        match command.kind:
            case CommandKind.PAUSE:
                self.pause(command)
            case CommandKind.RESUME:
                self.resume(command)
            case CommandKind.CANCEL:
                self.stop(
                    "cancel",
                    by=command.by,
                    reason=command.reason,
                    cascade=command.payload.get("cascade"),
                )
            case CommandKind.TERMINATE:
                self.terminate(command)
            case CommandKind.INJECT:
                self.inject(command)
        self.applied.append(command)

    def pause(self, command: Command) -> None:
        self.state["pauses"][command.id] = {
            "kind": "manual",
            "opened_at": self.at,
            "by": command.by,
            "reason": command.reason,
        }
        if command.traceparent is not None:
            self.state["pauses"][command.id]["traceparent"] = command.traceparent
        if "cascade" in command.payload:
            self.state["pauses"][command.id]["cascade"] = bool(command.payload["cascade"])
        if "freeze_clock" in command.payload:
            self.state["pauses"][command.id]["freeze_clock"] = bool(command.payload["freeze_clock"])
        self.state.pop("children_held", None)  # a new hold decides for the subflows again
        self.state["pause_reason"] = command.reason
        if self.status is S.RUNNING:
            self.set_status(S.PAUSING)
            self.emit("workflow.pausing", pause_id=command.id, by=command.by, reason=command.reason)
        else:  # QUEUED, or PAUSED on Pause tasks: nothing is in flight
            self.land_pause("pre_execution")

    def resume(self, command: Command) -> None:
        if "child_paused" in command.payload:
            self.children_stopped(command.payload["child_paused"])
            return
        if "heartbeat" in command.payload:
            self.heartbeat(command)
            return
        if "callback" in command.payload:
            self.complete_callback(command)
            return
        pause_id = command.payload["pause_id"]
        pause = self.state["pauses"][pause_id]
        if "vote" in command.payload:
            vote = approvals.vote_of(command.by, command.payload, self.at)
            approvals.apply_vote(self, pause_id, vote)
        elif pause["kind"] == "approval":
            agent.resume_approval(self, pause, command.payload["inputs"], by=command.by)
            self.run_again_unless_held()
        elif pause["kind"] == "subflow":
            self.end_child_wait(pause_id, pause, command.payload["child"])
        elif pause["kind"] == "queue":
            del self.state["pauses"][pause_id]
            self.emit("workflow.released", pause_id=pause_id, by=command.by)
            if not self.manual_pause_open():
                self.begin()
        elif pause["kind"] == "manual":
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
            for point in self.state["pauses"].values():
                point.pop("settled", None)  # its children run again
            if command.payload.get("cascade") is False:
                self.state["children_held"] = True  # the subflows stay paused
            self.thaw_clock()
            if QUEUE_PAUSE in self.state["pauses"]:
                self.set_status(S.QUEUED)  # still waiting for a concurrency slot
            else:
                self.set_status(S.RUNNING)
                if self.state["started_at"] is None:
                    self.begin()
        else:
            self.resume_task_pause(pause_id, pause, command.payload["inputs"], by=command.by)

    def complete_callback(self, command: Command) -> None:
        """A callback's completion: resume the task's wait, or keep it until it waits."""
        task_id, inputs = command.payload["callback"], command.payload["inputs"]
        record: CallbackRecord = {"status": "kept", "at": self.at, "by": command.by}
        if inputs:
            record["inputs"] = inputs
        self.state.setdefault("callbacks", {})[task_id] = record
        pause_id = command.payload.get("pause_id")
        if pause_id is None:
            self.emit("callback.kept", task_id=task_id, by=command.by)
            return
        record["status"] = "applied"
        self.emit("callback.applied", task_id=task_id, pause_id=pause_id, early=False)
        self.resume_task_pause(pause_id, self.state["pauses"][pause_id], inputs, by=command.by)

    def heartbeat(self, command: Command) -> None:
        """A callback's heartbeat: its Pause task's heartbeatTimeout starts again."""
        pause_id = command.payload["pause_id"]
        pause = self.state["pauses"][pause_id]
        task = self.index.task(pause["task_path"])
        assert isinstance(task, PauseTask) and task.heartbeat_timeout
        run = self.runs[pause["task_run_id"]]
        self.set_timer(
            "heartbeat", self.at + self.duration(task.heartbeat_timeout, run), pause_id=pause_id
        )
        self.emit("callback.heartbeat", task_id=task.id, pause_id=pause_id, by=command.by)

    def children_stopped(self, children: list[str]) -> None:
        """Subflows this pausing execution waits for have stopped: settle() lands the
        pause once every one has."""
        named = set(children)
        for pause in self.state["pauses"].values():
            if pause["kind"] == "subflow" and pause.get("child") in named:
                pause["settled"] = True
        self.emit("subflows.paused", count=len(named))

    def resume_task_pause(
        self,
        pause_id: str,
        pause: PausePoint,
        values: dict[str, Any],
        *,
        by: str,
        warn: bool = False,
    ) -> None:
        self.close_pause(pause_id)
        run = self.runs[pause["task_run_id"]]
        task = self.index.task(run["path"])
        assert isinstance(task, PauseTask)
        # Later tasks read the real values (outputs.<pause>.onResume.<id>), so the run
        # keeps them; its views and events redact them, and every masker masks them.
        self.remember_secret_values(secret_input_values(task.on_resume, values))
        run["outputs"] = {
            "onResume": values,
            "resumed": {"by": by, "on": iso(self.at), "to": S.RUNNING.value},
        }
        index_output(self.state["outputs"], run)
        run["state"] = T.RUNNING.value
        if warn:
            run["warn"] = True
        if task.tasks:
            run["block"] = new_block(f"{run['path']}.tasks", len(task.tasks))
        self.touch(run)
        self.emit(
            "workflow.resumed",
            pause_id=pause_id,
            task_id=run["task_id"],
            task_run_id=run["id"],
            by=by,
            inputs=redact_secret_inputs(task.on_resume, values),
        )
        self.run_again_unless_held()

    def inject(self, command: Command) -> None:
        messages = self.state["context"]["messages"]
        entry: ContextEntry = {
            "seq": len(messages) + 1,
            "role": command.payload.get("role", "user"),
            "message": command.payload["message"],
            "by": command.by,
            "at": iso(self.at),
            "command_id": command.id,
        }
        messages.append(entry)
        self.emit("context.injected", **entry)

    def stop(
        self, kind: StopKind, *, by: str, reason: str | None, cascade: bool | None = None
    ) -> None:
        """Cancel cooperatively (``kind`` cancel) or because the execution timed out.

        ``cascade`` False leaves the subflows it waits for running (see subflows.py).
        """
        if self.state["stop"] is not None:
            return  # already stopping: cancel is idempotent
        stop: Stop = {
            "kind": kind,
            "by": by,
            "reason": reason,
            "at": self.at,
            "phase": self.state["phase"],
        }
        if self.cause is not None:
            stop["traceparent"] = self.cause
        if cascade is not None:
            stop["cascade"] = cascade
        self.state["stop"] = stop
        self.state.pop("frozen", None)  # nothing it held will fire
        for pause_id in list(self.state["pauses"]):
            pause = self.close_pause(pause_id)
            if pause["kind"] in ("task", "approval", "decision", "subflow"):
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
        stop: Stop = {
            "kind": "terminate",
            "by": command.by,
            "reason": command.reason,
            "at": self.at,
            "phase": self.state["phase"],
        }
        if "cascade" in command.payload:
            stop["cascade"] = bool(command.payload["cascade"])
        self.state["stop"] = stop
        self.state.pop("frozen", None)
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
