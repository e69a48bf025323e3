"""Public data shapes: what the Python API, the HTTP API and the CLI return."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pausepoint.states import TERMINAL_EVENT_TYPES, TERMINAL_STATES, ExecutionState

__all__ = [
    "LIVE_ONLY_SEQ",
    "MESSAGE_ROLES",
    "TERMINAL_EVENT_TYPES",
    "TERMINAL_STATES",
    "CommandView",
    "ContextMessage",
    "ControlResult",
    "EventView",
    "ExecutionState",
    "ExecutionView",
    "MessageRole",
    "PausePointView",
    "StateView",
    "TaskRunView",
]

# The sequence number of events that followers see live and nobody stores, such as
# an agent's streamed tokens (``agent.delta``): they carry no SSE id to resume from.
LIVE_ONLY_SEQ = 0

# Who an injected message speaks as: the roles of a chat conversation (Kubiya's
# workflows name these four; its message route accepts any of them).
MessageRole = Literal["user", "system", "assistant", "tool"]
MESSAGE_ROLES: tuple[str, ...] = ("user", "system", "assistant", "tool")


class PublicModel(BaseModel):
    """The base of the public shapes: each builds its validator on first use, not at import.

    Building all of them (and the wire shapes) took a third of a remote
    ``pausepoint state``'s start-up; a command uses two or three.
    """

    model_config = ConfigDict(defer_build=True)


class TaskRunView(PublicModel):
    id: str
    task_id: str
    type: str
    state: str
    attempt: int
    parent: str | None = None
    value: Any = None
    started_at: str | None = None
    ended_at: str | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    log_file: str | None = Field(
        default=None, description="The stored file of the last attempt's log lines (logToFile)."
    )


class VoteView(PublicModel):
    """One vote on an approval request."""

    by: str
    decision: Literal["approve", "deny"]
    on: str
    comment: str | None = None
    groups: list[str] = Field(default_factory=list, description="Quorum groups it counts for.")
    inputs: dict[str, Any] | None = None


class ApprovalRequestView(PublicModel):
    """What an approval task's open request asks, of whom, and the votes so far."""

    title: str | None = None
    decisions: dict[str, str] = Field(description="The names of approve and deny on the form.")
    comment_required: Literal["NEVER", "ALWAYS", "ON_DENY", "ON_APPROVE"]
    approvers: dict[str, list[str]] = Field(description="users, groups and roles who may vote.")
    quorum: int | dict[str, int] = Field(description="Approvals needed, overall or per group.")
    deny_policy: Literal["ANY", "MAJORITY"]
    separation_of_duties: bool
    excluded: dict[str, str] = Field(
        default_factory=dict, description="Who may not approve it, and why."
    )
    votes: list[VoteView] = Field(default_factory=list)
    tool_call: dict[str, Any] | None = Field(
        default=None,
        description="An agent's tool call waiting for a decision: its tool and arguments "
        "(approve, deny with feedback, or respond in its place).",
    )


class MyVote(PublicModel):
    """What the caller may do with an approval request."""

    may_approve: bool = False
    may_deny: bool = False
    voted: Literal["approve", "deny"] | None = None
    why_not: str | None = Field(default=None, description="Why they may not approve, if so.")


class ApprovalItem(PublicModel):
    """An open approval request in the inbox, with its execution's context."""

    execution_id: str
    namespace: str
    flow_id: str
    labels: dict[str, str]
    execution_state: str
    task_id: str
    task_run_id: str
    pause_id: str
    opened_at: str
    due: str | None = None
    waiting_seconds: float
    request: ApprovalRequestView
    me: MyVote


class ApprovalPage(PublicModel):
    items: list[ApprovalItem]
    total: int = Field(description="Open requests matched (items holds up to limit of them).")


class PausePointView(PublicModel):
    """An open pause point: a manual pause, a Pause task, an agent tool call to approve,
    (``queue``) a wait for a free slot of the flow's concurrency limit, which only the
    server releases, or (``subflow``) a subflow task waiting for its child execution's
    end, which only that end answers."""

    id: str
    kind: Literal["manual", "task", "approval", "decision", "queue", "subflow"]
    task_id: str | None = None
    task_run_id: str | None = None
    opened_at: str
    deadline: str | None = None
    reason: str | None = None
    by: str | None = None
    on_resume_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the inputs a resume of this pause takes."
    )
    child_execution_id: str | None = Field(
        default=None, description="subflow: the child execution waited for."
    )
    approval: ApprovalRequestView | None = Field(
        default=None, description="decision: an approval task's request, its rules and votes."
    )


class ChildView(PublicModel):
    """An execution a subflow task of this one started."""

    id: str
    namespace: str
    flow_id: str
    state: str
    task_run_id: str = Field(description="The task run of the parent that started it.")
    waits: bool = Field(description="The parent's task waits for its end (control cascades).")
    cascade_error: str | None = Field(
        default=None, description="The last command a cascade could not send it."
    )


class DescendantPausePoint(PublicModel):
    """An open pause point of an execution below this one in its tree (a subflow's
    Pause task, say): resume it on that execution."""

    execution_id: str
    namespace: str
    flow_id: str
    pause_point: PausePointView


class ContextMessage(PublicModel):
    seq: int
    role: str
    message: str
    by: str
    at: str


class StateView(PublicModel):
    execution_id: str
    state: str
    checkpoint: str | None = None
    pause_reason: str | None = None
    pause_points: list[PausePointView] = Field(default_factory=list)


class TriggerView(PublicModel):
    """A flow's trigger and its state: what fires next, what fired last, paused or not."""

    namespace: str
    flow_id: str
    trigger_id: str
    type: Literal["schedule", "webhook", "flow"]
    description: str | None = None
    disabled: bool = Field(description="Disabled in the flow's definition (or the flow is).")
    paused: bool = Field(description="Paused from the API, the CLI or the UI.")
    paused_at: str | None = None
    next_fire: str | None = Field(default=None, description="A schedule's next tick.")
    backfill_next: str | None = Field(default=None, description="The next backfill tick.")
    last_fired_at: str | None = None
    last_execution_id: str | None = None
    last_error: str | None = None


class ExecutionView(PublicModel):
    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: str
    inputs: dict[str, Any]
    labels: dict[str, str]
    created_at: str
    started_at: str | None = None
    ended_at: str | None = None
    checkpoint: str | None = None
    pause_reason: str | None = None
    pause_points: list[PausePointView] = Field(default_factory=list)
    task_runs: list[TaskRunView] = Field(default_factory=list)
    context: list[ContextMessage] = Field(default_factory=list)
    outputs: dict[str, Any] | None = None
    error: str | None = None
    trigger: dict[str, Any] | None = Field(
        default=None,
        description="What started it, as its flow reads it (trigger.*): a trigger's variables, "
        "or a parent's (a ForEachItem batch's taskRunIteration).",
    )
    parent_id: str | None = Field(
        default=None, description="The execution whose subflow task started this one."
    )
    parent_task_run_id: str | None = None
    root_id: str | None = Field(default=None, description="The top of its tree (itself if none).")
    retried_by: str | None = Field(
        default=None,
        description="The new execution started to retry this failed one (a retry with "
        "behavior CREATE_NEW_EXECUTION; Kestra's RETRIED).",
    )
    original_id: str | None = Field(
        default=None, description="The first execution, when this one retries it."
    )
    attempt_number: int = Field(
        default=1, description="Which attempt of the first execution this one is."
    )
    children: list[ChildView] = Field(
        default_factory=list, description="The executions its subflow tasks started."
    )
    descendant_pause_points: list[DescendantPausePoint] = Field(
        default_factory=list,
        description="The open Pause tasks and approvals of every execution below it.",
    )
    busy_descendants: list[str] = Field(
        default_factory=list,
        description="Executions below it still QUEUED, RUNNING, PAUSING or CANCELLING: "
        "it is PAUSED as a whole tree only when this is empty.",
    )

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def task_run(self, task_id: str) -> TaskRunView:
        """The last run of ``task_id``; raises ``KeyError`` if it never ran."""
        for run in reversed(self.task_runs):
            if run.task_id == task_id:
                return run
        raise KeyError(task_id)


class EventView(PublicModel):
    execution_id: str
    seq: int
    type: str
    at: str
    data: dict[str, Any]

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES


class ControlResult(PublicModel):
    """The reply to a control command: every field of Kubiya's pause, resume, cancel and
    message replies (the native routes share Kubiya's paths), plus bookkeeping."""

    success: bool = True
    execution_id: str
    workflow_id: str = Field(
        default="",
        description="Kubiya's name for what was controlled: the execution id (which every "
        "route accepts), filled in when not given.",
    )
    state: str
    message: str
    command_id: str
    applied: bool | None = Field(
        default=None,
        description="True once applied, False if it was refused when applied, null while pending.",
    )
    replayed: bool = Field(default=False, description="An Idempotency-Key repeated a request.")
    pause_id: str | None = None
    terminated_at: str | None = None

    def model_post_init(self, context: Any, /) -> None:
        if not self.workflow_id:
            self.workflow_id = self.execution_id


class CommandView(PublicModel):
    id: str
    seq: int
    kind: str
    actor: str
    reason: str | None
    payload: dict[str, Any]
    idempotency_key: str | None
    request_id: str | None
    traceparent: str | None = Field(
        default=None,
        description="The W3C traceparent the request that sent the command came with.",
    )
    status: str
    message: str | None
    state_before: str | None
    state_after: str | None
    created_at: str
    applied_at: str | None
