"""The engine's state: plain JSON-serialisable data, its shape, and the helpers that build it.

The state is a tree of plain dicts and lists, so that a runtime can store it
as JSON and Temporal can carry it; the TypedDicts below describe that tree to
mypy (``state["stop"]["phase"]`` is checked) without changing what is stored.
A step mutates it in place (see :mod:`pausepoint.engine.interpreter`).

Task runs record the path of their task rather than a copy of it, and a block
(a list of tasks run one after another or side by side) records only its
cursor and the children still active, so a checkpoint stays small however long
the execution runs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict, cast

from pausepoint.engine.flowindex import FlowIndex

# Secret masking lived here; it is imported from here still.
from pausepoint.engine.masking import (
    MASK,
    SCRUB_MIN_LENGTH,
    Masker,
    masker,
    redact_secret_inputs,
    scrub,
    secret_input_values,
    shown_pause_outputs,
    written_forms,
)
from pausepoint.engine.model import ExecutionStatus, TaskRunState

__all__ = [
    "ANSWERED_KINDS",
    "CONTAINERS",
    "ENGINE_TYPES",
    "MASK",
    "PHASES",
    "SCRUB_MIN_LENGTH",
    "STATE_VERSION",
    "AgentConversation",
    "Block",
    "CallbackRecord",
    "Checkpoint",
    "ContextEntry",
    "EngineEnv",
    "EngineState",
    "ExitRequest",
    "Masker",
    "PauseKind",
    "PausePoint",
    "Phase",
    "StateData",
    "Stop",
    "StopKind",
    "TaskRun",
    "Timer",
    "TimerKind",
    "ToolCall",
    "Vote",
    "engine_state",
    "hold_before_start",
    "index_output",
    "iso",
    "masker",
    "new_block",
    "new_state",
    "read_timer",
    "rebuild_outputs",
    "redact_secret_inputs",
    "scrub",
    "secret_input_values",
    "shown_pause_outputs",
    "subflow_wait_id",
    "switch_key",
    "timer_id_of",
    "written_forms",
]

S = ExecutionStatus
T = TaskRunState
STATE_VERSION = 1

# "after": the flow's afterExecution tasks, once the outcome is decided.
Phase = Literal["main", "errors", "finally", "after"]
PHASES: tuple[Phase, ...] = ("main", "errors", "finally", "after")
StopKind = Literal["cancel", "timeout", "terminate"]
# "queue": a flow at its concurrency limit holds the execution QUEUED until a slot frees up.
# "subflow": a subflow task waits for its child execution's end (the execution stays RUNNING).
PauseKind = Literal["manual", "task", "approval", "decision", "queue", "subflow"]
# The pause points a person answers: only these make a RUNNING execution PAUSED.
ANSWERED_KINDS: frozenset[str] = frozenset({"task", "approval", "decision"})
TimerKind = Literal[
    "execution", "retry", "timeout", "pause", "pause_timeout", "heartbeat", "sleep", "wait", "sla"
]
# Where a paused execution stopped: before the next task, before finishing, or on
# Pause tasks (and approvals) waiting for an answer.
Checkpoint = Literal["pre_execution", "pre_completion", "pause_task"]


# -- the shape of the state -------------------------------------------------------------

Block = TypedDict(  # noqa: UP013  # functional form: a key is named "list"
    "Block",
    {
        "list": str | None,  # the path of the task list; None for a foreach's iterations
        "parallel": bool,
        "concurrency": int,  # at most this many children at once (0: no limit)
        "count": int,
        "next": int,  # the position of the next child to create
        "active": list[str],  # task run ids of the children not yet finished
        "failed": str | None,  # the first child that failed
        "values": NotRequired[list[Any]],  # a foreach's values, one iteration each
        "keys": NotRequired[list[str]],  # a Loop over a mapping: each iteration's key
        "tolerant": NotRequired[bool],  # a Loop without transmitFailed: failures do not count
        # After a child failed: "continue" starts the others still (a ForEach's CONTINUE);
        # "cancel" / "fail" interrupt those running, ending them CANCELLED / FAILED (a
        # Parallel's or Dag's onChildFailure, a ForEach's failFast). Absent: start nothing
        # new and let those running finish.
        "on_failure": NotRequired[Literal["continue", "cancel", "fail"]],
        # A Dag's: the positions each child waits for, and the run started per position.
        "depends": NotRequired[list[list[int]]],
        "started": NotRequired[dict[str, str]],
    },
)


class FlowRef(TypedDict):
    namespace: str
    id: str
    revision: int | None


class Stop(TypedDict):
    """A cancel, an execution timeout or a terminate, once accepted."""

    kind: StopKind
    by: str
    reason: str | None
    at: float
    phase: Phase  # the phase it arrived in: `finally` still runs unless it arrived there
    traceparent: NotRequired[str]  # the W3C trace context of the command that asked for it
    cascade: NotRequired[bool]  # whether it reaches the subflows (else: the flow's policy)


class CallbackRecord(TypedDict):
    """What became of a Pause task's callback: kept (early), applied, or its wait ended."""

    status: str  # kept | applied | ended
    at: float
    by: NotRequired[str]
    inputs: NotRequired[dict[str, Any]]


class Vote(TypedDict):
    """One person's vote on an approval task's request."""

    by: str
    decision: str  # approve | deny
    on: str
    groups: list[str]  # the groups of the quorum it counts for
    comment: NotRequired[str]
    inputs: NotRequired[dict[str, Any]]


class PausePoint(TypedDict):
    """An open pause point, by id: a manual pause, a Pause task or a tool call to approve."""

    kind: PauseKind
    opened_at: float
    by: NotRequired[str]  # manual
    reason: NotRequired[str | None]  # manual
    task_path: NotRequired[str]  # task, approval, subflow
    task_id: NotRequired[str]  # task, approval, subflow
    task_run_id: NotRequired[str]  # task, approval, subflow
    child: NotRequired[str]  # subflow: the child execution's id
    settled: NotRequired[bool]  # subflow: the child stopped while this execution pauses
    deadline: NotRequired[float | None]  # task, approval: when a pauseDuration ends it
    on_resume: NotRequired[list[dict[str, Any]]]  # approval: its own onResume inputs
    traceparent: NotRequired[str]  # manual: the W3C trace context of the pause command
    cascade: NotRequired[bool]  # manual: whether it holds the subflows (else: the flow's policy)
    freeze_clock: NotRequired[bool]  # manual: whether it stops the deadlines (else: the flow's)
    votes: NotRequired[list[Vote]]  # decision: the votes counted so far, in order
    excluded: NotRequired[dict[str, str]]  # decision: who may not approve, and why
    title: NotRequired[str]  # decision: the request's rendered title


class Timer(TypedDict):
    """A durable timer, by id: when it fires and what it acts on."""

    deadline: float
    kind: TimerKind
    task_run_id: NotRequired[str]  # retry, timeout, sleep, wait
    pause_id: NotRequired[str]  # pause, pause_timeout
    sla: NotRequired[int]  # sla: the position of the flow's MAX_DURATION sla


class Decided(TypedDict):
    """The outcome an execution ends in once its afterExecution tasks have run."""

    status: str
    at: float


class FrozenClock(TypedDict):
    """A pause that stops the clock: its timers stand still from ``at`` until the resume."""

    at: float
    timers: dict[str, Timer]


class ContextEntry(TypedDict):
    """A message injected into the execution's context."""

    seq: int
    role: str
    message: str
    by: str
    at: str
    command_id: str


class Context(TypedDict):
    messages: list[ContextEntry]


class ErrorInfo(TypedDict):
    message: str


class ToolCall(TypedDict):
    """A tool call of a model's answer, parsed; ``error`` when its arguments are unusable."""

    id: str
    name: str
    arguments: dict[str, Any]
    error: str | None


class AgentConversation(TypedDict):
    """An agent run's loop (see :mod:`pausepoint.engine.agent`)."""

    messages: list[dict[str, Any]]
    delivered: int  # context messages already added to the conversation
    turns: int
    usage: list[dict[str, Any]]
    call: str | None  # the child run in flight or waiting for approval
    queue: list[ToolCall]  # tool calls of the last answer not yet run


class TaskRun(TypedDict):
    """One run of a task (or one iteration of a foreach); ``state`` is a TaskRunState value."""

    id: str
    parent: str | None
    state: str
    attempt: int
    created_at: float
    started_at: float | None
    ended_at: float | None
    task_id: str
    path: str
    type: str
    value: NotRequired[Any]  # the foreach value it runs for (iterations and their tasks)
    index: NotRequired[int]  # an iteration's position
    key: NotRequired[str]  # a Loop iteration's key, when its values are a mapping
    block: NotRequired[Block]  # containers: their children
    branch: NotRequired[str]  # if, switch: the branch taken
    outputs: NotRequired[dict[str, Any]]
    error: NotRequired[str]
    log_file: NotRequired[str]  # the stored file of its attempt's log lines (logToFile)
    warn: NotRequired[bool]  # a Pause task resumed by its timer with behavior WARN
    timing_out: NotRequired[bool]  # its timeout fired; cancelled, it fails
    pause_id: NotRequired[str]  # Pause tasks and tool calls waiting for approval
    on_pause: NotRequired[str]  # a Pause task's onPause child run
    agent: NotRequired[AgentConversation]
    upto: NotRequired[int]  # a model call: how many messages it sends
    turn: NotRequired[int]  # a model call: the agent's turn
    tool_call_id: NotRequired[str]  # a tool call
    args: NotRequired[dict[str, Any]]  # a tool call's arguments
    rejected: NotRequired[str]  # a tool call whose approval was refused: why
    responded: NotRequired[bool]  # a tool call answered by a person in place of the tool
    waiting: NotRequired[bool]  # a WaitFor between two passes
    stage: NotRequired[str]  # a container's: "errors" or "finally" once its tasks ended
    failure: NotRequired[str]  # a container's: why its tasks failed (kept through its handlers)
    rerun: NotRequired[bool]  # a flowable whose RETRY_FLOWABLE timer fired: it starts again
    # A run retried by a new execution (CREATE_NEW_EXECUTION): "waiting" for its
    # delay, "due" once it passed (the new execution starts), then "started".
    new_execution: NotRequired[Literal["waiting", "due", "started"]]


class RetryOrigin(TypedDict):
    """Kestra's execution metadata for a retry by a new execution: the first execution
    (``execution.originalId``), this one's attempt number, and when the first was created
    (a retry's ``maxDuration`` counts from then)."""

    id: str
    attempt: int
    created_at: float


class ExitRequest(TypedDict):
    """An Exit task's request to end the execution (Kestra's exit state, and which task)."""

    state: str
    by: str
    reason: NotRequired[str]  # said in place of "<by> exited with <state>"
    run_finally: NotRequired[bool]  # the flow's finally runs first (an approval's behavior)


class Admission(TypedDict):
    """A flow's concurrency limit, reached: QUEUE holds it, CANCEL and FAIL end it at once."""

    behavior: Literal["QUEUE", "CANCEL", "FAIL"]
    reason: str


class EngineState(TypedDict):
    """An execution's whole state; ``status`` is an ExecutionState value."""

    v: int
    execution_id: str
    flow: FlowRef
    status: str
    inputs: dict[str, Any]
    labels: dict[str, str]
    created_at: float
    started_at: float | None
    ended_at: float | None
    phase: Phase
    outcome: str | None  # how `main` (then `finally`) ended, before the execution ends
    error: ErrorInfo | None
    stop: Stop | None
    checkpoint: Checkpoint | None
    pause_reason: str | None
    warning: bool  # a task ended in WARNING: COMPLETED becomes WARNING
    exit: NotRequired[ExitRequest | None]  # an Exit task asked to end the execution
    # The flow's concurrency limit was reached when it was created: what happens then.
    admission: NotRequired[Admission]
    trigger: NotRequired[dict[str, Any]]  # what started it (a schedule's tick, a webhook)
    started_by: NotRequired[str]  # who started it (separation of duties in approvals)
    variables: NotRequired[
        dict[str, Any]
    ]  # flow variables as SetVariables/UnsetVariables left them
    blocks: dict[str, Block]  # by phase
    next_run: int
    pauses: dict[str, PausePoint]
    timers: dict[str, Timer]
    inflight: list[str]  # leaf task runs handed to the runtime, in order
    context: Context
    result: Any  # the flow's outputs, once it completed
    task_runs: dict[str, TaskRun]  # stored in a table of their own, not with the rest
    outputs: dict[str, Any]  # an index of the task runs' outputs, rebuilt after loading
    # What every masker of this execution masks besides the secrets (see
    # pausepoint.engine.masking); absent from states written before it existed.
    secret_values: NotRequired[list[str]]
    # The W3C trace context the execution was started with: its events carry it.
    traceparent: NotRequired[str]
    # Resumed without cascading: the subflows its last hold paused stay paused.
    children_held: NotRequired[bool]
    # Held with its clock frozen: since when, and its timers, taken off until the resume.
    frozen: NotRequired[FrozenClock]
    # Its outcome, decided before its afterExecution tasks run: they do not change it.
    decided: NotRequired[Decided]
    # Callback completions by Pause task id: kept until the task waits, applied, or the
    # task's wait ended without one (then a completion is refused).
    callbacks: NotRequired[dict[str, CallbackRecord]]
    origin: NotRequired[RetryOrigin]  # an execution started to retry another one
    retried_by: NotRequired[str]  # the execution started to retry this one
    # Its MAX_DURATION slas' timers were armed (once: a fired one is not armed again).
    sla_armed: NotRequired[bool]
    # The positions of the flow's slas found violated (each is reported once).
    sla_violated: NotRequired[list[int]]


# What the engine's entry points take: its state, or the same data as a runtime loaded
# it from a checkpoint (JSON, typed ``dict[str, Any]``).
StateData = EngineState | dict[str, Any]


def engine_state(data: StateData) -> EngineState:
    """``data`` described as the engine's state (a cast: checkpoints hold what new_state built)."""
    return cast(EngineState, data)


@dataclass(frozen=True)
class EngineEnv:
    """What the engine reads besides the state: the flow and the secrets.

    Secrets are passed here rather than stored so that no checkpoint holds them.
    """

    index: FlowIndex
    secrets: Mapping[str, str] = field(default_factory=dict)
    public_url: str = ""  # the server's address as its users reach it (links in outputs)


@functools.lru_cache(maxsize=4096)  # a step formats the same few instants again and again
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
    traceparent: str | None = None,
    started_by: str | None = None,
) -> dict[str, Any]:
    """The state of a freshly created (QUEUED) execution.

    Typed as the stored data its callers keep (see :data:`StateData`); it is an
    :class:`EngineState`.
    """
    flow = index.flow
    state: EngineState = {
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
        "blocks": {"main": new_block("tasks", len(flow.tasks))},
        "next_run": 1,
        "pauses": {},
        "timers": {},
        "inflight": [],
        "context": {"messages": []},
        "result": None,
        "task_runs": {},
        "outputs": {},
        "secret_values": secret_input_values(flow.inputs, inputs),
    }
    if traceparent is not None:
        state["traceparent"] = traceparent
    if started_by is not None:
        state["started_by"] = started_by
    return cast("dict[str, Any]", state)


def new_block(
    list_path: str | None,
    count: int,
    *,
    parallel: bool = False,
    concurrency: int = 0,
) -> Block:
    return {
        "list": list_path,
        "parallel": parallel,
        "concurrency": concurrency,
        "count": count,
        "next": 0,
        "active": [],
        "failed": None,
    }


def hold_before_start(
    data: StateData, pause_id: str, *, by: str, reason: str | None, at: float
) -> None:
    """Make a freshly created execution PAUSED before its first task, held by ``by``.

    What a pause command sent before the start does, written into the state it
    is created with (a subflow started while its parent is held).
    """
    state = engine_state(data)
    state["pauses"][pause_id] = {"kind": "manual", "opened_at": at, "by": by, "reason": reason}
    state["pause_reason"] = reason
    state["checkpoint"] = "pre_execution"
    state["status"] = S.PAUSED.value


def rebuild_outputs(data: StateData) -> None:
    """Recompute the ``outputs`` index from the task runs (after loading a checkpoint)."""
    state = engine_state(data)
    outputs: dict[str, Any] = {}
    for run in state["task_runs"].values():
        if run["state"] in (T.SUCCESS, T.WARNING) and run.get("outputs") is not None:
            index_output(outputs, run)
    state["outputs"] = outputs


def index_output(outputs: dict[str, Any], run: TaskRun) -> None:
    if run.get("type") == "iteration":
        return
    if "value" in run:
        outputs.setdefault(run["task_id"], {})[str(run["value"])] = run["outputs"]
    else:
        outputs[run["task_id"]] = run["outputs"]


CONTAINERS = frozenset(
    {
        "iteration",
        "approval",
        "pause",
        "sequential",
        "parallel",
        "if",
        "switch",
        "foreach",
        "loop",
        "agent",
        "allow_failure",
        "working_directory",
        "wait_for",
        "dag",
        "foreach_item",
        "items_batches",
    }
)
ENGINE_TYPES = frozenset(
    {"fail", "assert", "exit", "sleep", "labels", "set_variables", "unset_variables"}
)
"""Task types the engine does itself, in the step that starts them (no leaf run)."""


def switch_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- timers -------------------------------------------------------------------------------

_TIMER_ID_PREFIX: dict[TimerKind, str] = {
    "execution": "execution",
    "retry": "retry",
    "timeout": "timeout",
    "pause": "pause",
    "pause_timeout": "ptimeout",
    "heartbeat": "heartbeat",
    "sleep": "sleep",
    "wait": "wait",
    "sla": "sla",
}
_TIMER_KIND_BY_PREFIX: dict[str, TimerKind] = {v: k for k, v in _TIMER_ID_PREFIX.items()}


def subflow_wait_id(task_run_id: str) -> str:
    """The id of the pause point on which a subflow task run waits for its child."""
    return f"s-{task_run_id}"


def timer_id_of(kind: TimerKind, target: str | None = None) -> str:
    """The id of the ``kind`` timer of ``target`` (a task run or a pause point id).

    Runtimes key durable timers by it, so it is unique within the execution
    and the same each time the engine arms or clears that timer.
    """
    prefix = _TIMER_ID_PREFIX[kind]
    return prefix if target is None else f"{prefix}:{target}"


def read_timer(timer_id: str, timer: Timer) -> Timer:
    """``timer`` with its kind and target, as this version writes them.

    Checkpoints written before the target was stored name it (and, for the
    oldest, the kind) only in the timer's id: for those, and only those, the
    id is read.
    """
    kind = timer.get("kind")
    if kind is not None and (
        "task_run_id" in timer or "pause_id" in timer or kind in ("execution", "sla")
    ):
        return timer
    prefix, _, target = timer_id.partition(":")
    kind = _TIMER_KIND_BY_PREFIX[prefix]
    upgraded: Timer = {"deadline": timer["deadline"], "kind": kind}
    if kind in ("retry", "timeout", "sleep", "wait"):
        upgraded["task_run_id"] = target
    elif kind in ("pause", "pause_timeout"):
        upgraded["pause_id"] = target
    return upgraded
