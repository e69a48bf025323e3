"""Scheduling: walking the flow tree, starting what may start, finishing what is done.

Pause takes effect here: :meth:`Scheduler.can_start` is false between an
accepted pause and its resume, so no new task starts; a pending pause lands in
:meth:`Scheduler.settle` once nothing is in flight.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

from pausepoint.engine import agent, approvals, loops, retries
from pausepoint.engine.model import (
    STATUS_BY_VALUE,
    TERMINAL_TASK_STATES,
    Action,
    CancelTask,
    ClearTimer,
    Command,
    ExecutionStatus,
    LogEvent,
    RunTask,
    SetTimer,
    TaskRunState,
    Transition,
)
from pausepoint.engine.state import (
    ANSWERED_KINDS,
    CONTAINERS,
    ENGINE_TYPES,
    Block,
    Checkpoint,
    EngineEnv,
    EngineState,
    Masker,
    PausePoint,
    Phase,
    StateData,
    TaskRun,
    Timer,
    TimerKind,
    engine_state,
    index_output,
    iso,
    masker,
    new_block,
    read_timer,
    shown_pause_outputs,
    switch_key,
    timer_id_of,
)
from pausepoint.errors import InputValidationError, TemplateError
from pausepoint.flow.durations import parse_duration
from pausepoint.flow.inputs import coerce_inputs
from pausepoint.flow.model import (
    AgentTask,
    ApprovalTask,
    DagTask,
    FlowableBase,
    FlowOutput,
    ForEachTask,
    IfTask,
    ItemBatchesTask,
    LoopTask,
    OutputValuesTask,
    ParallelTask,
    PauseTask,
    ReturnTask,
    SwitchTask,
    TaskBase,
    WaitForTask,
    WorkingDirectoryTask,
)
from pausepoint.flow.templates import render, render_condition
from pausepoint.states import KESTRA_STATES
from pausepoint.storage import log_file_name, task_file_uri

# ForEachItem's stages whose leaf the engine tells more than their properties.
ITEMS_STAGES = frozenset({"items_split", "items_batch", "items_merge"})
# Leaves that store files under their task run's URIs, named by their task's id.
FILE_WRITERS = frozenset({"write", "local_files", "log_fetch"})


def render_typed_outputs(
    outputs: list[FlowOutput], variables: dict[str, Any], task_id: str | None
) -> dict[str, Any]:
    """Kestra's typed outputs (a flow's, or a Loop iteration's of task ``task_id``),
    rendered, then checked as inputs of their types are."""
    values: dict[str, Any] = {}
    for output in outputs:
        where = (
            f"flow output '{output.id}'"
            if task_id is None
            else (f"task '{task_id}' output '{output.id}'")
        )
        try:
            values[output.id] = render(output.value, variables, where=where)
        except TemplateError:
            if output.required:
                raise
            values[output.id] = None  # an optional output that cannot render is absent
    specs = [output.as_input() for output in outputs]
    return coerce_inputs(specs, values, loc_prefix=("outputs",))


def item_entry(iteration: TaskRun) -> dict[str, Any]:
    """An iteration as Kestra's ``item`` names it: its value, index and (a Loop over a
    mapping) key."""
    item = {"value": iteration.get("value"), "index": iteration.get("index")}
    if "key" in iteration:
        item["key"] = iteration["key"]
    return item


def distinct(values: list[Any]) -> list[Any]:
    """``values`` without repeats, first occurrences in order (equal JSON is the same value:
    ``1`` and ``"1"`` differ, two equal mappings do not)."""
    seen: set[str] = set()
    kept: list[Any] = []
    for value in values:
        key = json.dumps(value, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


def truthy(value: Any) -> bool:
    """Kestra's truth rule for conditions (``runIf``, Fail, WaitFor).

    A string is false only when it is empty, ``false``, ``0`` or ``-0`` (any
    case, spaces ignored); ``None`` is false; other values follow Python.
    """
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_STRINGS
    return bool(value)


S = ExecutionStatus
T = TaskRunState

_FALSY_STRINGS = frozenset({"", "false", "0", "-0"})

# Kestra's Exit states: the state the Exit run (and its parents) end in, then the execution's.
EXIT_OUTCOMES: dict[str, tuple[TaskRunState, ExecutionStatus]] = {
    "SUCCESS": (T.SUCCESS, S.COMPLETED),
    "WARNING": (T.WARNING, S.COMPLETED),  # a WARNING run makes COMPLETED a WARNING
    "FAILED": (T.FAILED, S.FAILED),
    "CANCELED": (T.CANCELLED, S.CANCELLED),
    "CANCELLED": (T.CANCELLED, S.CANCELLED),  # Kestra's flows spell it both ways
    "KILLED": (T.CANCELLED, S.TERMINATED),
}


BlockOutcome = Literal["running", "success", "failed"]
# What `{{ callbacks.<pause task id> }}` renders to: the task's runner replaces it with
# a signed callback URL (the engine signs nothing; see service/callbacks.py).
CALLBACK_MARK = "[[pausepoint-callback {task}]]"


class Scheduler:
    """State bookkeeping and the tree walk; the event handlers build on it."""

    def __init__(self, state: StateData, env: EngineEnv, at: float) -> None:
        self.state: EngineState = engine_state(state)
        self.env = env
        self.index = env.index
        self.at = at
        self.runs: dict[str, TaskRun] = self.state["task_runs"]
        self.transition = Transition(state)
        self.applied: list[Command] = []
        # The W3C trace context of the command this step applies: the events it causes
        # carry it; other events carry the execution's own, if it was started with one.
        self.cause: str | None = None

    # -- bookkeeping ---------------------------------------------------------

    @property
    def status(self) -> ExecutionStatus:
        return STATUS_BY_VALUE[self.state["status"]]

    def emit(self, type_: str, **data: Any) -> None:
        trace = self.cause or self.state.get("traceparent")
        if trace is not None:
            data["traceparent"] = trace
        self.transition.events.append(LogEvent(type_, self.at, data))

    def act(self, action: Action) -> None:
        self.transition.actions.append(action)

    def touch(self, run: TaskRun) -> None:
        self.transition.changed_task_runs.add(run["id"])

    def set_timer(
        self,
        kind: TimerKind,
        deadline: float,
        *,
        task_run_id: str | None = None,
        pause_id: str | None = None,
    ) -> None:
        """Arm the ``kind`` timer (of a task run or a pause point); the timer records both."""
        timer: Timer = {"deadline": deadline, "kind": kind}
        if task_run_id is not None:
            timer["task_run_id"] = task_run_id
        if pause_id is not None:
            timer["pause_id"] = pause_id
        key = timer_id_of(kind, task_run_id or pause_id)
        self.state["timers"][key] = timer
        self.act(SetTimer(key, deadline))

    def clear_timer(self, key: str) -> None:
        if self.state["timers"].pop(key, None) is not None:
            self.act(ClearTimer(key))
        frozen = self.state.get("frozen")
        if frozen is not None:
            frozen["timers"].pop(key, None)  # already off: it never fires

    def set_status(self, status: ExecutionStatus) -> None:
        self.state["status"] = status.value

    # -- masking -----------------------------------------------------------------

    @functools.cached_property
    def masker(self) -> Masker:
        """Masks the secrets' values and the execution's SECRET-typed input values."""
        return masker(self.env.secrets.values(), self.state.get("secret_values") or ())

    def mask(self, value: Any) -> Any:
        """``value`` with every secret value masked: apply to all a task run records."""
        return self.masker(value)

    def remember_secret_values(self, values: list[str]) -> None:
        known: list[str] = self.state.setdefault("secret_values", [])
        added = [value for value in values if value not in known]
        if added:
            known.extend(added)
            self.__dict__.pop("masker", None)  # built without them

    # -- scheduling ------------------------------------------------------------

    def can_start(self) -> bool:
        """May new work start now? False between a pause and its resume."""
        status = self.status
        if self.state.get("exit") is not None:
            return False  # an Exit task asked to end: what runs finishes, nothing starts
        if status is S.RUNNING:
            return True
        if status is S.CANCELLING:
            # `finally` (and then afterExecution) still run for a stop that came before them.
            stop = self.state["stop"]
            phase = self.state["phase"]
            return bool(
                phase in ("finally", "after") and stop is not None and stop["phase"] != phase
            )
        return False

    def drive(self) -> None:
        self.drive_phases()
        self.settle()

    def drive_phases(self) -> None:
        state = self.state
        while not self.status.is_terminal and self.status is not S.QUEUED:
            phase = state["phase"]
            stop = state["stop"]
            if stop is not None and (phase not in ("finally", "after") or stop["phase"] == phase):
                if state["inflight"]:
                    return
                self.cancel_leftovers()
                if phase == "after":
                    self.end_decided()  # its outcome was decided before the stop came
                    return
                if (
                    phase != "finally"
                    and self.index.flow.finally_
                    and state["started_at"] is not None
                ):
                    self.enter_phase("finally")
                    continue
                if self.conclude(S.TIMED_OUT if stop["kind"] == "timeout" else S.CANCELLED):
                    return
                continue
            if state.get("exit") is not None:
                self.drivenew_block(state["blocks"][phase], None)  # the runs still finishing
                if self.still_finishing() or self.end_exit():
                    return
                continue
            outcome = self.drivenew_block(state["blocks"][phase], None)
            if state.get("exit") is not None:
                continue  # an Exit task ran: end as it asked (above)
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
            elif phase == "after":
                self.end_decided()  # what its afterExecution tasks did changes nothing
                return
            else:
                if outcome == "failed" and state["outcome"] == S.COMPLETED:
                    state["outcome"] = S.FAILED.value
                if stop is not None:
                    ended = S.TIMED_OUT if stop["kind"] == "timeout" else S.CANCELLED
                else:
                    assert state["outcome"] is not None  # set when `main` ended
                    ended = STATUS_BY_VALUE[state["outcome"]]
                if self.conclude(ended):
                    return

    def enter_phase(self, phase: Phase) -> None:
        # The phase's tasks are the flow's block of that name (afterExecution for "after").
        name = "afterExecution" if phase == "after" else phase
        tasks = self.index.flow.blocks()[name]
        self.state["phase"] = phase
        self.state["blocks"][phase] = new_block(name, len(tasks))

    def conclude(self, outcome: ExecutionStatus) -> bool:
        """Decide how the execution ends; True when it ended, False when its afterExecution
        tasks run first (the outcome stays decided whatever they do)."""
        if not self.index.flow.after_execution or self.state["started_at"] is None:
            self.finish(outcome)
            return True
        decided = self.decide(outcome)
        self.state["decided"] = {"status": decided.value, "at": self.at}
        self.emit("workflow.decided", state=decided.value)
        self.enter_phase("after")
        return False

    def end_decided(self) -> None:
        decided = self.state.get("decided")
        assert decided is not None  # set when the "after" phase began
        self.end(STATUS_BY_VALUE[decided["status"]])

    def still_finishing(self) -> bool:
        """Whether tasks started before an exit still run: leaves in flight, or Sleeps."""
        return bool(self.state["inflight"]) or any(
            read_timer(key, timer)["kind"] == "sleep" for key, timer in self.state["timers"].items()
        )

    def end_exit(self) -> bool:
        """End the execution as its Exit task asked, once nothing is in flight.

        False when the flow's ``finally`` runs first (an approval's SUCCEED or
        CANCEL): the execution then ends as a completed or cancelled one does.
        """
        exit_ = self.state["exit"]
        assert exit_ is not None
        _, status = EXIT_OUTCOMES[exit_["state"]]
        by = exit_["by"]
        reason = exit_.get("reason") or f"{by} exited with {exit_['state']}"
        for pause_id in list(self.state["pauses"]):
            self.close_pause(pause_id)
        self.cancel_leftovers()
        for timer_id in list(self.state["timers"]):
            self.clear_timer(timer_id)
        self.state.pop("frozen", None)
        if status is S.TERMINATED:
            self.set_status(S.TERMINATED)
            self.state["ended_at"] = self.at
            self.emit("workflow.terminated", by=by, reason=reason)
            return True
        if status is S.FAILED:
            self.state["error"] = {"message": reason}
        elif status is S.CANCELLED:
            self.state["stop"] = {
                "kind": "cancel",
                "by": by,
                "reason": reason,
                "at": self.at,
                "phase": self.state["phase"],
            }
        phase = self.state["phase"]
        if exit_.get("run_finally") and self.index.flow.finally_ and phase in ("main", "errors"):
            self.state["exit"] = None
            if status is S.COMPLETED:
                self.state["outcome"] = S.COMPLETED.value
                self.enter_phase("finally")
            return False  # a stop (cancelled) enters finally as a cancel does
        self.finish(status)
        return True

    def exit(
        self, run: TaskRun, state: str, *, reason: str | None = None, run_finally: bool = False
    ) -> None:
        """End ``run``, its parents, then the execution in ``state`` (the interpreter's)."""
        raise NotImplementedError

    def retry_delay(self, run: TaskRun, task: TaskBase) -> float | None:
        """How long until ``run`` is tried again, None when it is not (the interpreter's)."""
        raise NotImplementedError

    def wait_to_retry(
        self, run: TaskRun, delay: float, error: str, logs: list[Any] | None = None
    ) -> None:
        """``run`` failed with ``error`` and is tried again ``delay`` from now: RETRYING, on
        a durable timer, told as a ``task.retrying`` event."""
        run["state"] = T.RETRYING.value
        run["error"] = error
        self.touch(run)
        self.set_timer("retry", self.at + delay, task_run_id=run["id"])
        self.emit(
            "task.retrying",
            task_run_id=run["id"],
            task_id=run["task_id"],
            attempt=run["attempt"],
            error=error,
            retry_at=iso(self.at + delay),
            logs=logs or [],
        )

    def finish(self, outcome: ExecutionStatus) -> None:
        """End the execution now: COMPLETED becomes WARNING or FAILED as ``decide`` says."""
        self.end(self.decide(outcome))

    def decide(self, outcome: ExecutionStatus) -> ExecutionStatus:
        """The state ``outcome`` ends in: a COMPLETED one renders the flow's outputs (FAILED
        if they do not render) and is WARNING when a task ended in WARNING."""
        state = self.state
        if outcome is S.COMPLETED:
            try:
                state["result"] = self.mask(self.flow_outputs())
            except (TemplateError, InputValidationError) as error:
                state["error"] = {"message": self.mask(str(error))}
                outcome = S.FAILED
            if outcome is S.COMPLETED and state["warning"]:
                outcome = S.WARNING
        return outcome

    def end(self, outcome: ExecutionStatus) -> None:
        """Move to the terminal ``outcome`` (already decided) and log it."""
        state = self.state
        for run_id in state["inflight"]:
            self.act(CancelTask(run_id, kill=True))
        state["inflight"] = []
        for timer_id in list(state["timers"]):
            self.clear_timer(timer_id)
        decided = state.pop("decided", None)
        # Ended when its outcome was decided, before its afterExecution tasks (as Kestra).
        state["ended_at"] = decided["at"] if decided is not None else self.at
        self.set_status(outcome)
        if outcome in (S.COMPLETED, S.WARNING):
            self.emit("workflow.completed", state=outcome.value, outputs=state["result"] or {})
        elif outcome is S.FAILED:
            failure = state["error"]
            self.emit("workflow.failed", error=failure["message"] if failure else None)
        elif outcome is S.CANCELLED:
            stop = state["stop"]
            if stop is not None and "traceparent" in stop:
                self.cause = stop["traceparent"]
            self.emit(
                "workflow.cancelled",
                by=stop["by"] if stop else None,
                reason=stop["reason"] if stop else None,
            )
        elif outcome is S.TIMED_OUT:
            stop = state["stop"]
            self.emit("workflow.timed_out", reason=stop["reason"] if stop else None)

    def flow_outputs(self) -> dict[str, Any]:
        """The flow's outputs, rendered; Kestra's typed list form is checked as inputs are."""
        outputs = self.index.flow.outputs
        if isinstance(outputs, dict):
            rendered: dict[str, Any] = render(outputs, self.variables(None), where="flow outputs")
            return rendered
        return render_typed_outputs(outputs, self.variables(None), None)

    def settle(self) -> None:
        """Land a pending pause once nothing is in flight; note when only Pause tasks wait."""
        state = self.state
        if state["inflight"]:
            return
        if self.status is S.PAUSING:
            if not self.children_still_moving():
                self.land_pause(self.next_checkpoint())
        elif self.status is S.RUNNING and any(
            pause["kind"] in ANSWERED_KINDS for pause in state["pauses"].values()
        ):
            # Only people's answers make it PAUSED; a subflow's wait keeps it RUNNING.
            waiting_retry = any(
                read_timer(key, timer)["kind"] == "retry" for key, timer in state["timers"].items()
            )
            if not waiting_retry:
                state["checkpoint"] = "pause_task"
                self.set_status(S.PAUSED)
                self.emit(
                    "workflow.paused",
                    checkpoint="pause_task",
                    reason=None,
                    pause_ids=list(state["pauses"]),
                )

    def children_still_moving(self) -> bool:
        """Whether a pause that holds the subflows waits for some of them to stop.

        PAUSED means the whole tree has stopped: the control plane says when each
        child it waits for is paused (``child_paused``); one that ends closes its wait.
        """
        by_default = self.index.flow.cascade.pause
        holds = any(
            pause.get("cascade", by_default)
            for pause in self.state["pauses"].values()
            if pause["kind"] == "manual"
        )
        return holds and any(
            pause["kind"] == "subflow" and not pause.get("settled")
            for pause in self.state["pauses"].values()
        )

    def next_checkpoint(self) -> Checkpoint:
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

    def drivenew_block(self, block: Block, owner: TaskRun | None) -> BlockOutcome:
        """Advance a block of child runs; return ``running``, ``success`` or ``failed``."""
        while True:
            progressed = False
            for child_id in list(block["active"]):
                child = self.runs[child_id]
                self.drive_run(child)
                if child["state"] in TERMINAL_TASK_STATES:
                    block["active"].remove(child_id)
                    progressed = True
                    if (
                        child["state"] == T.FAILED
                        and block["failed"] is None
                        and not block.get("tolerant")
                    ):
                        block["failed"] = child_id
                        self.interrupt_siblings(block, child)
            keeps_starting = block["failed"] is None or block.get("on_failure") == "continue"
            if keeps_starting and self.can_start():
                limit = block["concurrency"] if block["parallel"] else 1
                if "depends" in block:
                    progressed = self.start_ready(block, owner, limit) or progressed
                while (
                    "depends" not in block
                    and block["next"] < block["count"]
                    and (limit == 0 or len(block["active"]) < limit)
                    and self.can_start()  # a child may end the execution (Exit)
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

    def interrupt_siblings(self, block: Block, failed: TaskRun) -> None:
        """A child of ``block`` failed: under a ``cancel`` or ``fail`` policy, end the
        children still running (at any depth) in that state, naming the one that failed."""
        policy = block.get("on_failure")
        if policy not in ("cancel", "fail"):
            return
        outcome = T.CANCELLED if policy == "cancel" else T.FAILED
        if failed["type"] == "iteration":
            culprit = f"iteration {failed.get('index')} of '{failed['task_id']}'"
        else:
            culprit = f"sibling task '{failed['task_id']}'"
        reason = f"interrupted because {culprit} failed"
        for sibling_id in block["active"]:
            if sibling_id != failed["id"]:
                self.interrupt(self.runs[sibling_id], outcome, reason)

    def interrupt(self, run: TaskRun, outcome: TaskRunState, reason: str) -> None:
        """End ``run`` and every run still going under it in ``outcome``, innermost first.

        Leaves in flight are cancelled (their late results are dropped: they are no
        longer in flight), and their durable timers (Sleep, retry, timeout, WaitFor)
        and pause points (Pause tasks, approvals, subflow waits) are closed, as a
        cancel of the execution would; a subflow child no longer waited for is then
        cancelled by the control plane.
        """
        for inner in [r for r in self.runs.values() if r["parent"] == run["id"]]:
            if inner["state"] not in TERMINAL_TASK_STATES:
                self.interrupt(inner, outcome, reason)
        if run["state"] in TERMINAL_TASK_STATES:
            return
        if run["id"] in self.state["inflight"]:
            self.state["inflight"].remove(run["id"])
            self.act(CancelTask(run["id"]))
        frozen = self.state.get("frozen")
        timers = {**(frozen["timers"] if frozen is not None else {}), **self.state["timers"]}
        for key, timer in timers.items():
            if read_timer(key, timer).get("task_run_id") == run["id"]:
                self.clear_timer(key)
        for pause_id, pause in list(self.state["pauses"].items()):
            if pause.get("task_run_id") == run["id"]:
                self.close_pause(pause_id)
        run.pop("waiting", None)
        run.pop("timing_out", None)
        self.finish_run(run, outcome, error=reason)
        self.run_again_unless_held()

    def start_ready(self, block: Block, owner: TaskRun | None, limit: int) -> bool:
        """Start the Dag children whose dependencies all succeeded; whether any started."""
        started = block["started"]
        done = {
            int(position)
            for position, run_id in started.items()
            if self.runs[run_id]["state"] in (T.SUCCESS, T.WARNING, T.SKIPPED)
        }
        progressed = False
        for position, needs in enumerate(block["depends"]):
            if (limit and len(block["active"]) >= limit) or not self.can_start():
                break
            if str(position) in started or not all(need in done for need in needs):
                continue
            child = self.create_child(block, owner, position)
            started[str(position)] = child["id"]
            block["next"] = len(started)
            block["active"].append(child["id"])
            self.start_run(child)
            progressed = True
        return progressed

    def create_child(
        self, block: Block, owner: TaskRun | None, position: int | None = None
    ) -> TaskRun:
        position = block["next"] if position is None else position
        if block["list"] is None:  # an iteration of a foreach
            assert owner is not None
            iteration = self.new_run(
                owner, task_id=owner["task_id"], path=owner["path"], type="iteration"
            )
            iteration["value"] = block["values"][position]
            iteration["index"] = position
            if "keys" in block:
                iteration["key"] = block["keys"][position]
            return iteration
        path = f"{block['list']}[{position}]"
        task = self.index.task(path)
        run = self.new_run(owner, task_id=task.id, path=path, type=task.type)
        if owner is not None and "value" in owner:
            run["value"] = owner["value"]  # what runs inside an iteration sees its value
        return run

    def new_run(
        self,
        parent: TaskRun | None,
        *,
        task_id: str,
        path: str,
        type: str,
    ) -> TaskRun:
        """A new task run (CREATED, first attempt) under ``parent``, recorded in the state.

        The caller adds what else the run records (a foreach value, a tool call).
        """
        run_id = f"t{self.state['next_run']}"
        self.state["next_run"] += 1
        run: TaskRun = {
            "id": run_id,
            "parent": parent["id"] if parent else None,
            "state": T.CREATED.value,
            "attempt": 1,
            "created_at": self.at,
            "started_at": None,
            "ended_at": None,
            "task_id": task_id,
            "path": path,
            "type": type,
        }
        self.runs[run_id] = run
        self.touch(run)
        return run

    def start_run(self, run: TaskRun) -> None:
        if run["type"] == "iteration":
            self.mark_started(run)
            run["block"] = new_block(
                f"{run['path']}.tasks", len(self.index.task_list(f"{run['path']}.tasks"))
            )
            return
        task = self.index.task(run["path"])
        if task.disabled:
            self.finish_run(run, T.SKIPPED)
            return
        try:
            if task.run_if is not None and not truthy(
                render(task.run_if, self.variables(run), where=f"task '{task.id}' runIf")
            ):
                self.finish_run(run, T.SKIPPED)
                return
            if task.type in ENGINE_TYPES:
                self.mark_started(run)
                self.run_in_engine(run, task)
                return
            if task.is_leaf:
                self.start_leaf(run)
                return
            self.start_container(run, task)
        except TemplateError as error:
            self.finish_run(run, T.FAILED, error=str(error))

    def run_in_engine(self, run: TaskRun, task: TaskBase) -> None:
        """Fail, Exit, Sleep and Labels: what they do needs only the state (the interpreter)."""
        raise NotImplementedError

    def mark_started(self, run: TaskRun) -> None:
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

    def render_leaf(self, run: TaskRun) -> dict[str, Any] | None:
        task = self.index.task(run["path"])
        try:
            if agent.is_agent_call(run):
                return agent.leaf_spec(self, run)
            path = run["path"]
            # Without templates, rendering only copies the spec: no variables to build.
            variables = self.variables(run) if self.index.leaf_spec_has_templates(path) else {}
            spec = dict(
                render(
                    self.index.leaf_spec(path),
                    variables,
                    where=f"task '{task.id}'",
                    as_string=isinstance(task, OutputValuesTask | ReturnTask) and task.as_text,
                )
            )
            if run["type"] in ("shell", "local_files"):
                self.share_directory(run, spec)
            elif run["type"] in ITEMS_STAGES:
                spec.update(self.items_stage_spec(run))
            elif run["type"] in loops.STAGE_TYPES:
                spec.update(loops.stage_spec(self, run))
            elif run["type"] == "retry_execution":
                spec.update(retries.stage_spec(self))
            if run["type"] in FILE_WRITERS:
                spec["taskId"] = run["task_id"]
            if task.log_to_file:
                spec["taskId"] = run["task_id"]
                spec["logToFile"] = True
                flow = self.state["flow"]
                run["log_file"] = task_file_uri(
                    flow["namespace"],
                    flow["id"],
                    self.state["execution_id"],
                    run["task_id"],
                    run["id"],
                    log_file_name(run["attempt"]),
                )
        except TemplateError as error:
            self.finish_run(run, T.FAILED, error=str(error))
            return None
        return spec

    def share_directory(self, run: TaskRun, spec: dict[str, Any]) -> None:
        """Name the scratch directory a shell task runs in, if it has one.

        Inside a WorkingDirectory: the WorkingDirectory's (made once, with its
        inputFiles). Otherwise a task with inputFiles or outputFiles gets one of
        its own. The runtime makes it under ``work_dir``; the engine only names it.
        """
        parent = run["parent"]
        while parent is not None:
            owner = self.runs[parent]
            if owner["type"] == "working_directory":
                task = self.index.task(owner["path"])
                assert isinstance(task, WorkingDirectoryTask)
                files = render(task.input_files, self.variables(run), where=f"task '{task.id}'")
                key = f"{self.state['execution_id']}/{owner['id']}"
                spec["sharedDirectory"] = {"key": key, "files": files}
                return
            parent = owner["parent"]
        if spec.get("inputFiles") or spec.get("outputFiles"):
            key = f"{self.state['execution_id']}/{run['id']}"
            spec["sharedDirectory"] = {"key": key, "files": {}}

    def start_leaf(self, run: TaskRun) -> None:
        spec = self.render_leaf(run)
        if spec is None:
            return
        self.mark_started(run)
        self.state["inflight"].append(run["id"])
        self.act(RunTask(run["id"], run["attempt"], run["task_id"], run["type"], spec))
        timeout = self.index.task(run["path"]).timeout
        if timeout:
            self.set_timer("timeout", self.at + self.duration(timeout, run), task_run_id=run["id"])

    def duration(self, value: str, run: TaskRun) -> float:
        rendered = render(value, self.variables(run), where=f"task '{run['task_id']}'")
        try:
            return parse_duration(str(rendered))
        except ValueError as error:
            raise TemplateError(f"task '{run['task_id']}': {error}") from None

    def start_container(self, run: TaskRun, task: TaskBase) -> None:
        path = run["path"]
        if isinstance(task, PauseTask):
            self.start_pause(run, task)
            return
        if isinstance(task, ApprovalTask):
            approvals.start_approval(self, run, task)
            return
        if isinstance(task, AgentTask):
            agent.start_agent(self, run, task)
            return
        if isinstance(task, IfTask):
            chosen = (
                "then"
                if render_condition(task.condition, self.variables(run), where=f"task '{task.id}'")
                else "else"
            )
            list_path = f"{path}.{chosen}"
            run["branch"] = chosen
            block = new_block(list_path, len(self.index.task_list(list_path)))
        elif isinstance(task, SwitchTask):
            value = render(task.value, self.variables(run), where=f"task '{task.id}'")
            key = switch_key(value)
            if key not in task.cases and not task.defaults:
                raise TemplateError(
                    f"task '{task.id}': no case matches {key!r} and there are no defaults"
                )
            list_path = f"{path}.cases.{key}" if key in task.cases else f"{path}.defaults"
            run["branch"] = key if key in task.cases else "defaults"
            block = new_block(list_path, len(self.index.task_list(list_path)))
        elif isinstance(task, ForEachTask | LoopTask):
            values = render(task.values, self.variables(run), where=f"task '{task.id}'")
            if isinstance(task, LoopTask) and loops.names_stored_file(values):
                loops.start_values_stage(run)  # the engine reads no file: a leaf stage does
                self.mark_started(run)
                return
            block = self.iteration_block(task, values)
        elif isinstance(task, ItemBatchesTask):
            batches = self.split_batches(run)
            block = new_block(None, len(batches), parallel=True, concurrency=task.concurrency)
            block["values"] = batches
        elif isinstance(task, ParallelTask):
            block = new_block(
                f"{path}.tasks", len(task.tasks), parallel=True, concurrency=task.concurrency
            )
        elif isinstance(task, DagTask):
            block = new_block(
                f"{path}.tasks",
                len(task.tasks),
                parallel=True,
                concurrency=self.dag_limit(run, task),
            )
            positions = {node.task.id: n for n, node in enumerate(task.tasks)}
            block["depends"] = [
                [positions[name] for name in node.depends_on] for node in task.tasks
            ]
            block["started"] = {}
        elif isinstance(task, WaitForTask):
            run["outputs"] = {"iterationCount": 1}
            index_output(self.state["outputs"], run)
            block = new_block(f"{path}.tasks", len(task.tasks))
        else:
            block = new_block(f"{path}.tasks", len(self.index.task_list(f"{path}.tasks")))
        if isinstance(task, ParallelTask | DagTask) and task.on_child_failure != "CONTINUE":
            block["on_failure"] = "fail" if task.on_child_failure == "FAIL" else "cancel"
        elif isinstance(task, ParallelTask) and task.fail_fast:
            block["on_failure"] = "cancel"  # Kestra kills them: CANCELLED here
        run["block"] = block
        self.mark_started(run)

    def iteration_block(self, task: ForEachTask | LoopTask, values: Any) -> Block:
        """The block of a ForEach's or Loop's iterations over its rendered ``values``."""
        if isinstance(values, str):
            try:
                values = json.loads(values)
            except ValueError:
                raise TemplateError(
                    f"task '{task.id}': values must be a list or a JSON array, got {values!r}"
                ) from None
        keys = None
        if isinstance(task, LoopTask) and isinstance(values, dict):
            keys, values = [str(key) for key in values], list(values.values())
        if not isinstance(values, list):
            raise TemplateError(f"task '{task.id}': values must be a list, got {values!r}")
        if isinstance(task, ForEachTask) and task.deduplicate:
            values = distinct(values)
        block = new_block(
            None, len(values), parallel=task.concurrency != 1, concurrency=task.concurrency
        )
        block["values"] = values
        if keys is not None:
            block["keys"] = keys
        if isinstance(task, LoopTask) and not task.transmit_failed:
            block["tolerant"] = True  # a failed iteration does not fail the loop
        if isinstance(task, ForEachTask):
            if task.fail_fast:
                block["on_failure"] = "cancel"  # Kestra kills them: CANCELLED here
            elif task.child_failure_policy == "CONTINUE":
                block["on_failure"] = "continue"
        return block

    def dag_limit(self, run: TaskRun, task: DagTask) -> int:
        """A Dag's ``concurrent``, rendered when it starts; TemplateError unless 0 or more."""
        value = task.concurrent
        if isinstance(value, str):
            value = render(value, self.variables(run), where=f"task '{task.id}' concurrent")
        try:
            limit = int(value)
        except (TypeError, ValueError):
            limit = -1
        if limit < 0 or isinstance(value, bool):
            raise TemplateError(
                f"task '{task.id}': concurrent is 0 (every ready task at once) or more, "
                f"got {value!r}"
            )
        return limit

    def start_pause(self, run: TaskRun, task: PauseTask) -> None:
        pause_id = f"p-{run['id']}"
        duration = self.duration(task.duration, run) if task.duration else None
        pause: PausePoint = {
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
            self.set_timer("pause", self.at + duration, pause_id=pause_id)
        if timeout is not None:
            self.set_timer("pause_timeout", self.at + timeout, pause_id=pause_id)
        if task.heartbeat_timeout:
            beat = self.duration(task.heartbeat_timeout, run)
            self.set_timer("heartbeat", self.at + beat, pause_id=pause_id)
        self.emit(
            "task.paused",
            task_run_id=run["id"],
            task_id=task.id,
            pause_id=pause_id,
            deadline=iso(pause["deadline"]) if pause.get("deadline") else None,
            behavior=task.behavior if duration is not None else None,
            on_resume=[spec.id for spec in task.on_resume],
        )
        kept = self.state.get("callbacks", {}).get(task.id)
        if kept is not None and kept["status"] == "kept":
            # Its callback came before it waited: the wait ends as it begins.
            kept["status"] = "applied"
            self.emit("callback.applied", task_id=task.id, pause_id=pause_id, early=True)
            self.resume_task_pause(pause_id, pause, kept.get("inputs", {}), by=kept.get("by", ""))
            return
        if task.on_pause is not None:
            child = self.create_child(new_block(f"{run['path']}.onPause", 1), run)
            run["on_pause"] = child["id"]
            self.start_run(child)

    def drive_run(self, run: TaskRun) -> None:
        state = run["state"]
        if state in TERMINAL_TASK_STATES:
            return
        if run["type"] not in CONTAINERS:
            if state == T.CREATED and self.can_start():
                if run["type"] in ENGINE_TYPES:  # a retry of Fail or Assert
                    self.mark_started(run)
                    try:
                        self.run_in_engine(run, self.index.task(run["path"]))
                    except TemplateError as error:
                        self.finish_run(run, T.FAILED, error=str(error))
                else:
                    self.start_leaf(run)
            elif state == T.RETRYING and run.get("new_execution") == "due" and self.can_start():
                retries.start_new_execution(self, run)
            return
        if state == T.RETRYING:
            return  # a flowable waiting to be run again (RETRY_FLOWABLE)
        if state == T.CREATED and run.get("rerun"):
            if self.can_start():
                retries.restart_flowable(self, run)
                self.drive_run(run)
            return
        if run["type"] == "agent":
            agent.drive_agent(self, run)
            return
        if run["type"] == "approval":
            approvals.drive_approval(self, run)
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
        if run.get("waiting"):
            return  # a WaitFor between passes: its timer starts the next one
        block = run.get("block")
        outcome = self.drivenew_block(block, run) if block is not None else "success"
        if outcome == "running" or run["state"] in TERMINAL_TASK_STATES:
            return  # still going, or ended by a child (Exit)
        if on_pause is not None and self.runs[on_pause]["state"] not in TERMINAL_TASK_STATES:
            return
        stage = run.get("stage", "tasks")
        if run["type"] == "wait_for" and outcome == "success" and stage == "tasks":
            try:
                if self.wait_again(run):
                    return
            except TemplateError as error:
                self.finish_run(run, T.FAILED, error=str(error), outputs=run.get("outputs"))
                return
        if run["type"] == "items_batches" and stage == "tasks":
            counted = self.batch_counts(run)
            if counted:
                run["outputs"] = counted
        elif run["type"] == "foreach" and stage == "tasks":
            run["outputs"] = {"outputs": self.foreach_outputs(run)}
        elif run["type"] == "loop" and stage in loops.STAGES:
            if outcome == "success" and loops.next_stage(self, run, stage):
                return
            run["outputs"] = loops.outputs(self, run, stage)
            stage = "tasks"  # a stage that failed is its tasks failing: errors, then finally
        elif run["type"] == "working_directory" and stage in ("tasks", "outputs"):
            if outcome == "success" and stage == "tasks" and self.store_output_files(run):
                return
            if outcome == "success" and stage == "outputs":
                (stored,) = [
                    r
                    for r in self.runs.values()
                    if r["parent"] == run["id"] and r["path"] == f"{run['path']}.outputs[0]"
                ]
                run["outputs"] = {"outputFiles": stored.get("outputs", {}).get("uris", {})}
            stage = "tasks"
        elif (
            run["type"] == "iteration" and outcome == "success" and not self.iteration_outputs(run)
        ):
            return  # its outputs could not be rendered: it failed
        if outcome == "failed" and "failure" not in run:
            failed = self.runs[block["failed"]] if block and block["failed"] else None
            run["failure"] = f"task '{failed['task_id']}' failed" if failed else "failed"
        if self.next_stage(run, stage):
            return
        if "failure" in run:
            if retries.retry_flowable(self, run):
                return
            self.finish_run(run, T.FAILED, error=run["failure"], outputs=run.get("outputs"))
        else:
            warn = run.get("warn") or retries.warn_after_retry(self, run)
            self.finish_run(run, T.WARNING if warn else T.SUCCESS, outputs=run.get("outputs"))

    def store_output_files(self, run: TaskRun) -> bool:
        """After a WorkingDirectory's tasks succeeded: start its ``outputs`` stage (the
        LocalFiles leaf storing what ``outputFiles`` names) and say True, or False when
        it names nothing."""
        task = self.index.task(run["path"])
        assert isinstance(task, WorkingDirectoryTask)
        if not task.output_files:
            return False
        run["stage"] = "outputs"
        run["block"] = new_block(f"{run['path']}.outputs", 1)
        self.touch(run)
        self.drive_run(run)
        return True

    def next_stage(self, run: TaskRun, stage: str) -> bool:
        """Start a container's local ``errors`` (after a failure) or ``finally`` block.

        True when one started. The container keeps its failure: it still ends
        FAILED after its ``errors`` ran (WARNING with allowFailure).
        """
        task = self.index.task(run["path"])
        # An iteration shares its ForEach's (or Loop's) path, not its handlers: those run
        # once, for the whole task, after its iterations.
        handlers = (
            task.handlers() if isinstance(task, FlowableBase) and run["type"] != "iteration" else {}
        )
        upcoming = (
            ["errors", "finally"] if stage == "tasks" else ["finally"] if stage == "errors" else []
        )
        for name in upcoming:
            if name == "errors" and "failure" not in run:
                continue
            if name in handlers:
                run["stage"] = name
                run["block"] = new_block(f"{run['path']}.{name}", len(handlers[name]))
                self.touch(run)
                self.drive_run(run)
                return True
        return False

    def wait_again(self, run: TaskRun) -> bool:
        """After a WaitFor pass: arm the next pass and say True, or False when it is done.

        Done when ``maxIterations`` or ``maxDuration`` is reached (FAILED with
        ``failOnMaxReached``), or when the condition renders falsy.
        """
        task = self.index.task(run["path"])
        assert isinstance(task, WaitForTask)
        frequency = task.check_frequency
        count = run.get("outputs", {}).get("iterationCount", 1)
        began = run["started_at"] if run["started_at"] is not None else self.at
        if count >= frequency.max_iterations or self.at >= began + parse_duration(
            frequency.max_duration
        ):
            if task.fail_on_max_reached:
                reason = f"task '{task.id}' reached its limit after {count} iteration(s)"
                self.finish_run(run, T.FAILED, error=reason, outputs=run.get("outputs"))
                return True
            return False
        where = f"task '{task.id}' condition"
        if truthy(render(task.condition, self.variables(run), where=where)) is task.until:
            return False  # the condition says the loop is done
        run["outputs"] = {"iterationCount": count + 1}
        index_output(self.state["outputs"], run)
        run["waiting"] = True
        self.touch(run)
        delay = parse_duration(frequency.interval)
        self.set_timer("wait", self.at + delay, task_run_id=run["id"])
        return True

    def next_pass(self, run: TaskRun) -> None:
        """A WaitFor's interval is over: its tasks run again (as new task runs)."""
        run.pop("waiting", None)
        run["block"] = new_block(
            f"{run['path']}.tasks", len(self.index.task_list(f"{run['path']}.tasks"))
        )
        self.touch(run)

    def finish_run(
        self,
        run: TaskRun,
        outcome: TaskRunState,
        *,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
        logs: list[Any] | None = None,
    ) -> None:
        """Move a task run to a terminal state and log it; masks ``outputs``, ``error``, ``logs``.

        A Pause task's outputs are its onResume values, which later tasks read:
        the run keeps them as they are and only its event masks them.
        """
        error, logs = self.mask(error), self.mask(logs)
        shown = outputs
        if outputs is not None:
            if run["type"] == "pause":
                shown = self.shown_pause_outputs(run, outputs)
            elif run["type"] == "approval":
                shown = self.mask(outputs)  # its SECRET review inputs stay readable to tasks
            else:
                outputs = shown = self.mask(outputs)
        # Iterations and model calls have no task of their own to allow failure.
        own_task = run["type"] not in ("iteration", agent.MODEL_CALL)
        task = self.index.task(run["path"]) if own_task else None
        if outcome is T.FAILED and task is not None and task.allow_failure:
            outcome = T.WARNING
        if outcome is T.WARNING and task is not None and task.allow_warning:
            outcome = T.SUCCESS
        if outcome is T.WARNING:
            self.state["warning"] = True
        run["state"] = outcome.value
        run["ended_at"] = self.at
        if error is not None:
            run["error"] = error
        if outputs is not None:
            run["outputs"] = outputs
            index_output(self.state["outputs"], run)
        self.touch(run)
        data: dict[str, Any] = {"task_run_id": run["id"], "task_id": run["task_id"]}
        if outcome in (T.SUCCESS, T.WARNING):
            if shown:
                data["outputs"] = shown
            if error:
                data["error"] = error
            self.emit("task.completed", state=outcome.value, logs=logs or [], **data)
        elif outcome is T.FAILED:
            self.emit("task.failed", error=error, logs=logs or [], **data)
        elif outcome is T.CANCELLED:
            self.emit("task.cancelled", **data)
        elif outcome is T.SKIPPED:
            self.emit("task.skipped", **data)

    def shown_pause_outputs(self, run: TaskRun, outputs: dict[str, Any]) -> dict[str, Any]:
        """A Pause task run's outputs as views and events show them (SECRET values redacted)."""
        specs = getattr(self.index.task(run["path"]), "on_resume", ())
        return shown_pause_outputs(specs, outputs, self.masker)

    def cancel_leftovers(self) -> None:
        for run in self.runs.values():
            if run["state"] not in TERMINAL_TASK_STATES:
                self.finish_run(run, T.CANCELLED)

    def land_pause(self, checkpoint: Checkpoint) -> None:
        traces = [p["traceparent"] for p in self.state["pauses"].values() if "traceparent" in p]
        if traces and self.cause is None:
            self.cause = traces[-1]  # the pause that lands it
        self.set_status(S.PAUSED)
        self.state["checkpoint"] = checkpoint
        self.emit(
            "workflow.paused",
            checkpoint=checkpoint,
            reason=self.state["pause_reason"],
            pause_ids=list(self.state["pauses"]),
        )
        if self.freezes_clock():
            self.freeze_clock()

    def freezes_clock(self) -> bool:
        """Whether the manual pause holding it stops its clock (the request, else the flow)."""
        by_default = self.index.flow.clock == "FREEZE"
        return any(
            pause.get("freeze_clock", by_default)
            for pause in self.state["pauses"].values()
            if pause["kind"] == "manual"
        )

    def freeze_clock(self) -> None:
        """Take every timer off: no deadline of the execution moves while it is held."""
        if "frozen" in self.state:
            return
        timers = self.state["timers"]
        for key in timers:
            self.act(ClearTimer(key))
        self.state["frozen"] = {"at": self.at, "timers": timers}
        self.state["timers"] = {}
        self.emit("clock.frozen", deadlines=len(timers))

    def thaw_clock(self) -> None:
        """The hold is gone: every timer comes back with the time it had left."""
        frozen = self.state.pop("frozen", None)
        if frozen is None:
            return
        stood_still = self.at - frozen["at"]
        for key, timer in sorted(frozen["timers"].items(), key=lambda kv: kv[1]["deadline"]):
            timer["deadline"] += stood_still
            self.state["timers"][key] = timer
            self.act(SetTimer(key, timer["deadline"]))
        for pause in self.state["pauses"].values():
            if pause.get("deadline") is not None:
                pause["deadline"] = pause["deadline"] + stood_still  # type: ignore[operator]
        self.emit("clock.resumed", stood_still_seconds=round(stood_still, 3))

    def run_again_unless_held(self) -> None:
        """A pause point was answered: RUNNING again, unless a manual pause still holds it."""
        if self.status is S.PAUSED and not self.manual_pause_open():
            self.set_status(S.RUNNING)
            self.state["checkpoint"] = None

    def manual_pause_open(self) -> bool:
        return any(p["kind"] == "manual" for p in self.state["pauses"].values())

    def close_pause(self, pause_id: str) -> PausePoint:
        pause = self.state["pauses"].pop(pause_id)
        self.clear_timer(timer_id_of("pause", pause_id))
        self.clear_timer(timer_id_of("pause_timeout", pause_id))
        if pause["kind"] == "task":
            self.clear_timer(timer_id_of("heartbeat", pause_id))
            # A callback for this task can no longer complete it (one completion per task).
            callbacks = self.state.setdefault("callbacks", {})
            callbacks.setdefault(pause["task_id"], {"status": "ended", "at": self.at})
        return pause

    def resume_task_pause(
        self,
        pause_id: str,
        pause: PausePoint,
        values: dict[str, Any],
        *,
        by: str,
        warn: bool = False,
    ) -> None:
        """Resume a Pause task's pause point with ``values`` (the interpreter's)."""
        raise NotImplementedError

    def fail_pause(self, pause: PausePoint, error: str) -> None:
        """The pause failed (its timeout, behavior FAIL, its onPause task): its own
        ``errors`` and ``finally`` run first, then it ends FAILED."""
        run = self.runs[pause["task_run_id"]]
        self.close_pause(f"p-{run['id']}")
        child_id = run.get("on_pause")
        if child_id and child_id in self.state["inflight"]:
            self.state["inflight"].remove(child_id)
            self.act(CancelTask(child_id))
            self.finish_run(self.runs[child_id], T.CANCELLED)
        if self.status is S.PAUSED and not self.manual_pause_open():
            self.set_status(S.RUNNING)
        run["failure"] = error
        run["state"] = T.RUNNING.value
        self.touch(run)
        if not self.next_stage(run, "tasks"):
            self.finish_run(run, T.FAILED, error=error)

    # -- templates ---------------------------------------------------------------

    def parents_of(self, run: TaskRun) -> list[dict[str, Any]]:
        """Kestra's ``parents``: the task runs holding ``run``, nearest first."""
        parents: list[dict[str, Any]] = []
        parent_id = run["parent"]
        while parent_id is not None:
            parent = self.runs[parent_id]
            if parent["type"] != "iteration":
                parents.append(
                    {
                        "task": {"id": parent["task_id"]},
                        "taskrun": {"id": parent["id"], "value": parent.get("value")},
                    }
                )
            parent_id = parent["parent"]
        return parents

    def item_of(self, run: TaskRun) -> dict[str, Any] | None:
        """Kestra Loop's ``item``: the value and index of the nearest iteration holding
        ``run`` (or that ``run`` is), with ``parent`` and ``parents`` for the ones above."""
        items: list[dict[str, Any]] = []
        current: TaskRun | None = run
        while current is not None:
            if current["type"] == "iteration":
                items.append(item_entry(current))
            parent = current["parent"]
            current = self.runs[parent] if parent is not None else None
        if not items:
            return None
        return {**items[0], "parent": items[1] if len(items) > 1 else None, "parents": items[1:]}

    # -- Loop ---------------------------------------------------------------------

    def outputs_seen_by(self, run: TaskRun) -> dict[str, Any]:
        """The outputs ``run``'s templates read: inside a Loop iteration, the iteration's
        own tasks' outputs stand under their ids (as in Kestra, where each iteration is
        an execution of its own)."""
        scopes: list[str] = []  # the Loop iterations holding run, innermost first
        current: TaskRun | None = run
        while current is not None:
            parent = current["parent"]
            owner = self.runs[parent] if parent is not None else None
            if current["type"] == "iteration" and owner is not None and owner["type"] == "loop":
                scopes.append(current["id"])
            current = owner
        if not scopes:
            return self.state["outputs"]
        seen = dict(self.state["outputs"])
        for scope in reversed(scopes):
            for other in self.runs.values():
                if (
                    other.get("outputs") is not None
                    and other["type"] != "iteration"
                    and self.holds(scope, other)
                ):
                    seen[other["task_id"]] = other["outputs"]
        return seen

    def holds(self, ancestor_id: str, run: TaskRun) -> bool:
        parent = run["parent"]
        while parent is not None:
            if parent == ancestor_id:
                return True
            parent = self.runs[parent]["parent"]
        return False

    def iteration_outputs(self, iteration: TaskRun) -> bool:
        """Render a Loop iteration's declared ``outputs`` onto it; False when they cannot
        be rendered (the iteration has then failed)."""
        owner = self.owner_of(iteration)
        if owner["type"] != "loop":
            return True
        task = self.index.task(owner["path"])
        assert isinstance(task, LoopTask)
        if not task.outputs:
            return True
        item = item_entry(iteration)
        try:
            values = render_typed_outputs(task.outputs, self.variables(iteration), task.id)
        except (TemplateError, InputValidationError) as error:
            self.finish_run(iteration, T.FAILED, error=str(error))
            return False
        iteration["outputs"] = {"item": item, "outputs": values}
        return True

    def foreach_outputs(self, foreach: TaskRun) -> list[dict[str, Any]]:
        """Kestra ForEach's ``outputs``: per iteration, in order, the outputs of the task runs
        inside it by task id (every iteration, also two of the same value)."""
        iterations = loops.iterations(self, foreach)
        by_iteration: dict[str, dict[str, Any]] = {r["id"]: {} for r in iterations}
        for other in self.runs.values():  # one pass: each run climbs to its iteration
            if other.get("outputs") is None or other["type"] == "iteration":
                continue
            current = other
            while current["parent"] is not None and current["parent"] != foreach["id"]:
                current = self.runs[current["parent"]]
            if current["id"] in by_iteration:
                by_iteration[current["id"]][other["task_id"]] = other["outputs"]
        return [by_iteration[r["id"]] for r in iterations]

    def loop_outputs(self, loop: TaskRun) -> dict[str, Any]:
        """Kestra Loop's outputs: iterations started, running, ended per state, and each
        iteration's declared outputs in order."""
        iterations = loops.iterations(self, loop)
        ended: dict[str, int] = {}
        for iteration in iterations:
            if iteration["state"] in TERMINAL_TASK_STATES:
                name = "KILLED" if iteration["state"] == T.CANCELLED else str(iteration["state"])
                ended[name] = ended.get(name, 0) + 1
        outputs: dict[str, Any] = {
            "iterationCount": len(iterations),
            "runningIterations": sum(
                1 for r in iterations if r["state"] not in TERMINAL_TASK_STATES
            ),
            "terminatedIterations": ended,
        }
        task = self.index.task(loop["path"])
        if isinstance(task, LoopTask) and task.outputs:
            outputs["outputs"] = [r["outputs"] for r in iterations if "outputs" in r]
        return outputs

    def error_variable(self) -> dict[str, Any]:
        """Kestra's ``error`` in ``errors`` tasks: the first task run that failed."""
        failed = next(
            (
                run
                for run in self.runs.values()
                if run["state"] == T.FAILED and run["type"] not in CONTAINERS
            ),
            None,
        )
        if failed is None:
            return {}
        return {"taskId": failed["task_id"], "message": failed.get("error")}

    def variables(self, run: TaskRun | None) -> dict[str, Any]:
        state = self.state
        flow = self.index.flow
        variables: dict[str, Any] = {
            "inputs": state["inputs"],
            "outputs": state["outputs"] if run is None else self.outputs_seen_by(run),
            "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
            "execution": {
                "id": state["execution_id"],
                # The first execution when this one retries it (CREATE_NEW_EXECUTION).
                "originalId": state.get("origin", {}).get("id", state["execution_id"]),
                # Kestra's name of its state (of its decided outcome in afterExecution).
                "state": KESTRA_STATES[state.get("decided", {}).get("status", state["status"])],
                "startDate": iso(self.at if state["started_at"] is None else state["started_at"]),
                "labels": state["labels"],
            },
            "labels": state["labels"],
            "vars": state.get("variables", flow.variables),
            "trigger": state.get("trigger") or {},
            "context": state["context"],
            "secrets": self.env.secrets,
            # A copy: the sandbox lets a template change a dict it is given.
            "callbacks": dict(self.index.callback_marks(CALLBACK_MARK)),
            # The time of the event being applied, for now(): never the wall clock.
            "__now__": self.at,
        }
        if state["phase"] == "errors":
            variables["error"] = self.error_variable()
        if run is not None:
            parents = self.parents_of(run)
            variables["parents"] = parents
            variables["parent"] = parents[0] if parents else None
            variables["task"] = {"id": run["task_id"], "type": run["type"]}
            variables["taskrun"] = {
                "id": f"{state['execution_id']}/{run['id']}",
                "startDate": iso(self.at),
                "attemptsCount": run["attempt"],
                "value": run.get("value"),
            }
            item = self.item_of(run)
            if item is not None:
                variables["item"] = item
                # Kestra's ForEach: the position of the iteration a task runs in.
                variables["taskrun"]["iteration"] = item["index"]
            approval = approvals.approval_variables(self, run)
            if approval is not None:
                variables["approval"] = approval
            if run["type"] == "items_batch":  # a ForEachItem batch: its file and position
                variables["taskrun"]["items"] = run.get("value")
                variables["taskrun"]["iteration"] = self.owner_of(run).get("index")
        return variables

    # -- ForEachItem ---------------------------------------------------------------

    def owner_of(self, run: TaskRun) -> TaskRun:
        parent = run["parent"]
        assert parent is not None, f"task run {run['id']} has no parent"
        return self.runs[parent]

    def stage_sibling(self, run: TaskRun, stage: str) -> TaskRun | None:
        """The latest run of the ForEachItem stage ``stage`` beside ``run``."""
        owner = self.owner_of(run)
        task_id = f"{self.index.task(owner['path']).id}{stage}"
        found = [
            r for r in self.runs.values() if r["parent"] == owner["id"] and r["task_id"] == task_id
        ]
        return found[-1] if found else None

    def split_batches(self, run: TaskRun) -> list[str]:
        split = self.stage_sibling(run, "_split")
        batches = split.get("outputs", {}).get("batches") if split is not None else None
        if not isinstance(batches, list):
            raise TemplateError(f"task '{run['task_id']}': the items were not split")
        return [str(uri) for uri in batches]

    def batch_runs(self, items: TaskRun) -> list[TaskRun]:
        """The subflow runs of a ForEachItem's batches, in batch order."""
        iterations = {
            r["id"]: r.get("index", 0)
            for r in self.runs.values()
            if r["parent"] == items["id"] and r["type"] == "iteration"
        }
        found = [r for r in self.runs.values() if r["parent"] in iterations]
        return sorted(found, key=lambda r: (iterations[self.owner_of(r)["id"]], r["created_at"]))

    def batch_counts(self, items: TaskRun) -> dict[str, Any]:
        """``numberOfBatches`` and ``iterations`` (subflows per end state, Kestra's names)."""
        block = items.get("block")
        total = block["count"] if block is not None else 0
        if total == 0:
            return {}
        counts: dict[str, int] = {"CREATED": 0, "RUNNING": 0}
        for batch in self.batch_runs(items):
            if batch["state"] not in TERMINAL_TASK_STATES:
                counts["RUNNING"] += 1
                continue
            child_state = (batch.get("outputs") or {}).get("state")
            name = KESTRA_STATES.get(str(child_state), "") if child_state else ""
            if not name:  # no wait, or the subflow never started
                name = "SUCCESS" if batch["state"] in (T.SUCCESS, T.WARNING) else "FAILED"
            counts[name] = counts.get(name, 0) + 1
        counts["CREATED"] = total - sum(counts.values())
        return {"numberOfBatches": total, "iterations": counts}

    def items_stage_spec(self, run: TaskRun) -> dict[str, Any]:
        """What a ForEachItem stage's leaf needs from the execution besides its properties."""
        if run["type"] == "items_batch":
            return {"iteration": self.owner_of(run).get("index", 0)}
        extra: dict[str, Any] = {"taskId": run["task_id"]}
        if run["type"] == "items_merge":
            items = self.stage_sibling(run, "_items")
            batches = self.batch_runs(items) if items is not None else []
            extra["subflowOutputs"] = [
                (b.get("outputs") or {}).get("outputs") or {} for b in batches
            ]
        return extra
