"""What the workflow, its activities and the control plane send each other.

Plain dataclasses of JSON values, so that Temporal's default converter stores
them in the workflow history as they are. Nothing here does I/O: the workflow
module imports it inside the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKFLOW_NAME = "pausepoint.execution"
COMMAND_SIGNAL = "command"
STATE_QUERY = "state"
LOAD_ACTIVITY = "pausepoint.load_execution"
CHECKPOINT_ACTIVITY = "pausepoint.checkpoint"
RUN_TASK_ACTIVITY = "pausepoint.run_task"

# What the checkpoint activity returns instead of an event sequence number when the
# store already holds a different step at this point: one a lost workflow task took
# (its worker died, or a signal arrived as it completed, after its checkpoint was
# written). The workflow then continues from the store, not from its own step.
DIVERGED = -1

# The lease every projection writes under. Executions on Temporal are run by
# their workflow, not by a process, so there is one owner and it never expires.
TEMPORAL_OWNER = "temporal"


def workflow_id(execution_id: str) -> str:
    return f"pausepoint-{execution_id}"


@dataclass(frozen=True)
class CommandMessage:
    """A command as recorded by the control plane; ``seq`` orders it within its execution."""

    seq: int
    id: str
    kind: str
    at: float
    by: str
    reason: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    traceparent: str | None = None


@dataclass(frozen=True)
class WorkflowOptions:
    """Settings the workflow needs, fixed when it starts (they are part of its history)."""

    heartbeat_timeout: float
    continue_as_new_after: int


@dataclass(frozen=True)
class Carried:
    """Everything a run hands to the next one when it continues as new."""

    state: dict[str, Any]
    event_seq: int
    next_command_seq: int
    waiting_commands: list[CommandMessage]
    flow_source: str
    flow_revision: int
    secrets: dict[str, str]
    # Actions of the last step not yet carried out (tasks to start, timers to arm).
    actions: list[dict[str, Any]]
    # Defaults keep the histories of workflows begun before a field existed replayable.
    public_url: str = ""


@dataclass(frozen=True)
class ExecutionInput:
    execution_id: str
    options: WorkflowOptions
    carried: Carried | None = None


@dataclass(frozen=True)
class LoadedExecution:
    """The last checkpoint of an execution, read when its workflow first runs.

    ``state`` is ``None`` when the execution already finished (with ``status``).
    """

    status: str
    state: dict[str, Any] | None = None
    event_seq: int = 0
    flow_source: str = ""
    flow_revision: int = 0
    secrets: dict[str, str] = field(default_factory=dict)
    pending: list[CommandMessage] = field(default_factory=list)
    next_command_seq: int = 1
    public_url: str = ""  # the server's address as its users reach it (Settings.public_url)


@dataclass(frozen=True)
class EventData:
    seq: int
    type: str
    at: float
    data: dict[str, Any]


@dataclass(frozen=True)
class Projection:
    """One engine step, written to the store as one checkpoint."""

    execution_id: str
    status: str
    state: dict[str, Any]
    started_at: float | None
    ended_at: float | None
    task_runs: list[dict[str, Any]]
    events: list[EventData]
    # (command id, applied, message, state after)
    command_results: list[tuple[str, bool, str, str]]
    event_seq: int


@dataclass(frozen=True)
class TaskInput:
    execution_id: str
    task_run_id: str
    attempt: int
    task_type: str
    spec: dict[str, Any]
    traceparent: str | None = None  # the execution's W3C trace context, for the run's span


@dataclass(frozen=True)
class TaskOutcome:
    """How a task body ended; a task's own failure is an outcome, not an activity failure.

    Temporal retries the activity only when its worker is lost; retries of the
    task itself follow the flow's retry policy, in the engine.
    """

    succeeded: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
