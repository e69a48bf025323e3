"""The states of an execution, named once for the engine, the server and the clients.

A leaf module: it imports nothing of pausepoint, so the HTTP client reads the
same definition as the engine without importing the server. States are
``StrEnum`` members, so they equal the strings stored and sent on the wire
(``ExecutionState.PAUSED == "PAUSED"``) and ``"FAILED" in TERMINAL_STATES``
holds for a plain string.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["KESTRA_STATES", "TERMINAL_EVENT_TYPES", "TERMINAL_STATES", "ExecutionState"]


class ExecutionState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSING = "PAUSING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    WARNING = "WARNING"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_terminal(self) -> bool:
        """Whether the execution has ended: nothing brings it back."""
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[ExecutionState] = frozenset(
    {
        ExecutionState.COMPLETED,
        ExecutionState.WARNING,
        ExecutionState.FAILED,
        ExecutionState.CANCELLED,
        ExecutionState.TERMINATED,
        ExecutionState.TIMED_OUT,
    }
)

# pausepoint's execution state -> Kestra's State.Type (its API and `execution.state`).
KESTRA_STATES: dict[str, str] = {
    "QUEUED": "CREATED",
    "RUNNING": "RUNNING",
    "PAUSING": "RUNNING",  # the pause waits for the next checkpoint: still running
    "PAUSED": "PAUSED",
    "CANCELLING": "KILLING",  # Kestra's one "being stopped" state
    "COMPLETED": "SUCCESS",
    "WARNING": "WARNING",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
    "TERMINATED": "KILLED",
    "TIMED_OUT": "FAILED",  # Kestra fails what overran its timeout
}

# The log events that end an execution, one per terminal state (WARNING ends with
# workflow.completed): the last event of every ended execution's log.
TERMINAL_EVENT_TYPES = frozenset(
    {
        "workflow.completed",
        "workflow.failed",
        "workflow.cancelled",
        "workflow.terminated",
        "workflow.timed_out",
    }
)
