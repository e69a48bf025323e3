"""What goes into the engine and what comes out of it.

Inputs are events (things that happened: a task finished, a timer fired, a
control command arrived); outputs are actions (things the runtime must do:
run a task, cancel one, arm or clear a durable timer) and log events. All of
them are plain data so that a runtime can persist them and so that Temporal
can replay them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pausepoint.states import TERMINAL_EVENT_TYPES, TERMINAL_STATES, ExecutionState

if TYPE_CHECKING:
    from pausepoint.engine.state import StateData

# The engine's name for the one definition of execution states (pausepoint.states).
ExecutionStatus = ExecutionState
TERMINAL_STATUSES = TERMINAL_STATES

# ``ExecutionStatus(value)`` goes through the enum machinery: ten times slower than this
# lookup, and the scheduler reads the status of the state many times per step.
STATUS_BY_VALUE: dict[str, ExecutionStatus] = {status.value: status for status in ExecutionStatus}


class TaskRunState(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    RETRYING = "RETRYING"


TERMINAL_TASK_STATES = frozenset(
    {
        TaskRunState.SUCCESS,
        TaskRunState.WARNING,
        TaskRunState.FAILED,
        TaskRunState.CANCELLED,
        TaskRunState.SKIPPED,
    }
)


class CommandKind(StrEnum):
    """What a control command asks for; the values are what the store records."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    TERMINATE = "terminate"
    INJECT = "inject"


# A command kind as written in code that predates the enum: accepted where a kind is
# passed in, so that callers holding a literal keep type-checking.
CommandKindName = Literal["pause", "resume", "cancel", "terminate", "inject"]
COMMAND_KINDS: tuple[CommandKind, ...] = tuple(CommandKind)
_KIND_BY_VALUE: dict[str, CommandKind] = {kind.value: kind for kind in CommandKind}


# ---------------------------------------------------------------------------
# Events in


@dataclass(frozen=True)
class Started:
    """The runtime picked the execution up for the first time."""

    at: float


@dataclass(frozen=True)
class Recovered:
    """A runtime (re)loaded the execution from its last checkpoint.

    The engine answers by re-issuing every in-flight task (at-least-once) and
    re-arming every durable timer.
    """

    at: float


@dataclass(frozen=True)
class TaskSucceeded:
    task_run_id: str
    attempt: int
    at: float
    outputs: dict[str, Any] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TaskFailed:
    task_run_id: str
    attempt: int
    at: float
    error: str
    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TaskCancelled:
    """An in-flight task acknowledged cancellation (or was killed)."""

    task_run_id: str
    attempt: int
    at: float


@dataclass(frozen=True)
class TimerFired:
    timer_id: str
    at: float


@dataclass(frozen=True, init=False)
class Command:
    """A control command accepted by the control plane, in acceptance order.

    ``kind`` is always a :class:`CommandKind`; it may be given as its value.
    Raises ``ValueError`` for a kind that does not exist. ``traceparent`` is the
    W3C trace context of the request that sent it: the events the command causes
    carry it.
    """

    id: str
    kind: CommandKind
    at: float
    by: str = "anonymous"
    reason: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    traceparent: str | None = None

    def __init__(
        self,
        id: str,
        kind: CommandKind | CommandKindName,
        at: float,
        by: str = "anonymous",
        reason: str | None = None,
        payload: dict[str, Any] | None = None,
        traceparent: str | None = None,
    ) -> None:
        known = _KIND_BY_VALUE.get(kind)
        if known is None:
            raise ValueError(f"unknown command kind {kind!r}; kinds are {', '.join(CommandKind)}")
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "kind", known)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "by", by)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "payload", {} if payload is None else payload)
        object.__setattr__(self, "traceparent", traceparent)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}


Event = Started | Recovered | TaskSucceeded | TaskFailed | TaskCancelled | TimerFired | Command


# ---------------------------------------------------------------------------
# Actions out


@dataclass(frozen=True)
class RunTask:
    """Run a leaf task. ``task_run_id`` is stable across re-runs after a crash."""

    task_run_id: str
    attempt: int
    task_id: str
    task_type: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class CancelTask:
    """Stop an in-flight task: cooperatively, or at once when ``kill`` is set."""

    task_run_id: str
    kill: bool = False


@dataclass(frozen=True)
class SetTimer:
    timer_id: str
    deadline: float


@dataclass(frozen=True)
class ClearTimer:
    timer_id: str


Action = RunTask | CancelTask | SetTimer | ClearTimer


@dataclass(frozen=True)
class LogEvent:
    """An entry for the execution's append-only event log."""

    type: str
    at: float
    data: dict[str, Any]


@dataclass(frozen=True)
class CommandResult:
    command_id: str
    applied: bool
    message: str
    status: ExecutionStatus


@dataclass
class Transition:
    """Everything one call to :func:`advance` produced."""

    state: StateData
    actions: list[Action] = field(default_factory=list)
    events: list[LogEvent] = field(default_factory=list)
    command_results: list[CommandResult] = field(default_factory=list)
    changed_task_runs: set[str] = field(default_factory=set)

    def absorb(self, later: Transition, *, actions: bool = True) -> None:
        """Add what a later call to :func:`advance` in the same step produced."""
        if actions:
            self.actions.extend(later.actions)
        self.events.extend(later.events)
        self.command_results.extend(later.command_results)
        self.changed_task_runs |= later.changed_task_runs
        # A command refused later in the step than the one that ended the execution
        # goes before the terminal event, which stays the last one of the log.
        ends = [n for n, event in enumerate(self.events) if event.type in TERMINAL_EVENT_TYPES]
        if ends and ends[-1] != len(self.events) - 1:
            self.events.append(self.events.pop(ends[-1]))
