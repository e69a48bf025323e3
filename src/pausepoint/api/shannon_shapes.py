"""Shannon's shapes and names: task statuses, events, the task list, submit and approvals.

Plain functions map pausepoint's states and events to Shannon's, so that each
table is written once (docs/compatibility.md shows the same tables). The field
names are the ones Shannon's gateway sends and its Python SDK (``shannon-sdk``)
reads; nothing here decides anything, it only renames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pausepoint.models import EventView, ExecutionView, PublicModel
from pausepoint.service.engine import event_view
from pausepoint.service.feed import EventRecord
from pausepoint.states import ExecutionState as S
from pausepoint.wire import ExecutionSummary

# -- task statuses -------------------------------------------------------------------

# Shannon has no PAUSING or CANCELLING: a task is RUNNING until the pause or the cancel
# lands (control-state's is_paused / is_cancelled say one was accepted). WARNING is a
# finished run with a warning, TERMINATED a forceful cancel.
TASK_STATUS: dict[S, str] = {
    S.QUEUED: "TASK_STATUS_QUEUED",
    S.RUNNING: "TASK_STATUS_RUNNING",
    S.PAUSING: "TASK_STATUS_RUNNING",
    S.PAUSED: "TASK_STATUS_PAUSED",
    S.CANCELLING: "TASK_STATUS_RUNNING",
    S.COMPLETED: "TASK_STATUS_COMPLETED",
    S.WARNING: "TASK_STATUS_COMPLETED",
    S.FAILED: "TASK_STATUS_FAILED",
    S.CANCELLED: "TASK_STATUS_CANCELLED",
    S.TERMINATED: "TASK_STATUS_CANCELLED",
    S.TIMED_OUT: "TASK_STATUS_TIMEOUT",
}


def task_status(state: str) -> str:
    """Shannon's ``TASK_STATUS_*`` name of a pausepoint execution state."""
    return TASK_STATUS[S(state)]


def states_with_status(status: str) -> tuple[str, ...] | None:
    """The pausepoint states a Shannon status filter (``RUNNING`` or ``TASK_STATUS_RUNNING``,
    any case) matches; None if it names no Shannon status."""
    wanted = "TASK_STATUS_" + status.strip().upper().removeprefix("TASK_STATUS_")
    if wanted == "TASK_STATUS_CANCELED":
        wanted = "TASK_STATUS_CANCELLED"
    states = tuple(state.value for state, name in TASK_STATUS.items() if name == wanted)
    return states or None


SHANNON_STATUSES = tuple(
    dict.fromkeys(name.removeprefix("TASK_STATUS_") for name in TASK_STATUS.values())
)

# -- events --------------------------------------------------------------------------

# pausepoint's event type -> Shannon's. Control events keep the dotted names Shannon's
# SSE uses for them (its SDK's EventType.WORKFLOW_PAUSING == "workflow.pausing").
EVENT_TYPE: dict[str, str] = {
    "workflow.started": "WORKFLOW_STARTED",
    "workflow.completed": "WORKFLOW_COMPLETED",
    "workflow.failed": "WORKFLOW_FAILED",
    "workflow.timed_out": "WORKFLOW_FAILED",
    "workflow.pausing": "workflow.pausing",
    "workflow.paused": "workflow.paused",
    "workflow.resumed": "workflow.resumed",
    "workflow.cancelling": "workflow.cancelling",
    "workflow.cancelled": "workflow.cancelled",
    "workflow.terminated": "workflow.cancelled",
    "workflow.recovered": "ERROR_RECOVERY",
    "task.started": "AGENT_STARTED",
    "task.completed": "AGENT_COMPLETED",
    "task.failed": "ERROR_OCCURRED",
    "task.retrying": "ERROR_RECOVERY",
    "task.paused": "APPROVAL_REQUESTED",
    "task.cancelled": "PROGRESS",
    "task.skipped": "PROGRESS",
    "context.injected": "MESSAGE_RECEIVED",
    "agent.message": "LLM_OUTPUT",
    "agent.delta": "LLM_PARTIAL",
    "agent.tool_call": "TOOL_INVOKED",
    "agent.tool_result": "TOOL_OBSERVATION",
    "command.rejected": "STATUS_UPDATE",
}
OTHER_EVENT_TYPE = "PROGRESS"

# Shannon's SDK reads the message of these two as JSON (``Event.payload``).
JSON_MESSAGE_TYPES = frozenset({"APPROVAL_REQUESTED", "TOOL_INVOKED"})


def event_type(pausepoint_type: str) -> str:
    """Shannon's name of a pausepoint event type."""
    return EVENT_TYPE.get(pausepoint_type, OTHER_EVENT_TYPE)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def event_message(event: EventView) -> str:
    """The event as Shannon's human-readable ``message`` (JSON for the types Shannon's SDK
    parses: an approval request names its ``approval_id``, a tool call its arguments)."""
    data, kind = event.data, event.type
    shannon_type = event_type(kind)
    if shannon_type == "APPROVAL_REQUESTED":
        return json.dumps(
            {
                "approval_id": data.get("pause_id"),
                "workflow_id": event.execution_id,
                "task_id": data.get("task_id"),
                "inputs": data.get("on_resume") or [],
                "deadline": data.get("deadline"),
            }
        )
    if shannon_type == "TOOL_INVOKED":
        return json.dumps(
            {"tool": data.get("name"), "tool_call_id": data.get("tool_call_id"), **data}
        )
    task = data.get("task_id")
    reason = data.get("reason")
    match kind:
        case "workflow.paused":
            return f"Paused at {data.get('checkpoint')}" + (f": {reason}" if reason else "")
        case "workflow.pausing":
            return "Pausing at the next checkpoint" + (f": {reason}" if reason else "")
        case "workflow.resumed":
            return f"Resumed by {data.get('by')}"
        case "workflow.cancelling" | "workflow.cancelled" | "workflow.terminated":
            verb = kind.removeprefix("workflow.").capitalize()
            return verb + (f": {reason}" if reason else "")
        case "workflow.failed":
            return f"Failed: {data.get('error')}"
        case "workflow.timed_out":
            return "Timed out" + (f": {reason}" if reason else "")
        case "workflow.completed":
            return f"Completed ({data.get('state', 'COMPLETED')})"
        case "task.failed" | "task.retrying":
            return f"Task {task}: {data.get('error')}"
        case "context.injected" | "agent.message" | "agent.delta" | "agent.tool_result":
            return _text(data.get("message") or data.get("content") or "")
    return f"{kind} {task}" if task else kind


def shannon_event(event: EventView) -> dict[str, Any]:
    """One event in Shannon's fields: ``type``, ``workflow_id``, ``message``, ``timestamp``,
    ``seq``, ``agent_id`` (the task), and pausepoint's own data as ``payload``."""
    body: dict[str, Any] = {
        "workflow_id": event.execution_id,
        "type": event_type(event.type),
        "message": event_message(event),
        "timestamp": event.at,
        "seq": event.seq,
        "payload": {"event": event.type, **event.data},
    }
    task = event.data.get("task_id")
    if isinstance(task, str):
        body["agent_id"] = task
    return body


@dataclass(frozen=True)
class ShannonFrames:
    """SSE frames in Shannon's shape: ``id: <seq>``, ``event: <TYPE>``, ``data: {…}``,
    only the Shannon ``types`` asked for (all when empty)."""

    types: frozenset[str] = frozenset()

    def _frame(self, event: EventView, with_id: bool) -> str:
        body = shannon_event(event)
        if self.types and body["type"] not in self.types:
            return ""
        head = f"id: {event.seq}\n" if with_id else ""
        return f"{head}event: {body['type']}\ndata: {json.dumps(body, default=str)}\n\n"

    def stored(self, event: EventView) -> str:
        return self._frame(event, with_id=True)

    def live_only(self, record: EventRecord) -> str:
        return self._frame(event_view(record), with_id=False)


# -- replies -------------------------------------------------------------------------


class ShannonTaskStatus(PublicModel):
    """``GET /api/v1/tasks/{id}``: Shannon's task status, plus pausepoint's state."""

    task_id: str
    workflow_id: str
    status: str = Field(description="TASK_STATUS_QUEUED|RUNNING|PAUSED|COMPLETED|…")
    result: str | None = None
    error: str | None = None
    created_at: str
    updated_at: str
    query: str | None = None
    session_id: str | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ShannonTaskSummary(PublicModel):
    task_id: str
    query: str
    status: str
    mode: str = ""
    created_at: str
    completed_at: str | None = None


class ShannonTaskList(PublicModel):
    tasks: list[ShannonTaskSummary]
    total_count: int


class ShannonEvent(PublicModel):
    workflow_id: str
    type: str
    agent_id: str | None = None
    message: str
    timestamp: str
    seq: int
    payload: dict[str, Any] = Field(default_factory=dict)


class ShannonEventList(PublicModel):
    events: list[ShannonEvent]
    count: int


class _ShannonBody(BaseModel):
    # Built at import (FastAPI reads bodies as `Body()` parameters, which a deferred model
    # does not support). Fields of Shannon's this route has no use for are ignored, not
    # refused: its clients send them.
    model_config = ConfigDict(extra="ignore")


class ShannonSubmitBody(_ShannonBody):
    """Shannon's task submission. Its other fields (mode, model_tier, …) are accepted and
    ignored: the configured flow decides how the query is answered."""

    query: str = Field(min_length=1, max_length=10_000)
    session_id: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9:_\-.]+$")
    context: dict[str, Any] | None = None


class ShannonSubmitReply(PublicModel):
    task_id: str
    workflow_id: str
    status: str
    message: str
    created_at: str


class ShannonDecisionBody(_ShannonBody):
    """Shannon's approval decision (``modified_action`` and ``approved_by`` are ignored: the
    caller is who decided)."""

    approval_id: str = Field(min_length=1, max_length=200)
    workflow_id: str = Field(min_length=1, max_length=200)
    run_id: str | None = None
    approved: bool = True
    feedback: str | None = Field(default=None, max_length=500)


class ShannonDecisionReply(PublicModel):
    status: str = "sent"
    success: bool
    message: str
    workflow_id: str
    run_id: str | None = None
    approval_id: str


# -- views -> replies ----------------------------------------------------------------

SHANNON_QUERY_LABEL = "shannon.query"
SHANNON_SESSION_LABEL = "shannon.session_id"
# Long queries are cut in the label (the full text is the execution's `query` input).
QUERY_LABEL_CHARS = 200


def task_result(execution: ExecutionView) -> str | None:
    """The flow's outputs as Shannon's ``result`` text: the output named ``result`` or the
    only output when it is a string, else all outputs as JSON."""
    outputs = execution.outputs
    if not outputs:
        return None
    if isinstance(outputs.get("result"), str):
        return str(outputs["result"])
    if len(outputs) == 1 and isinstance(next(iter(outputs.values())), str):
        return str(next(iter(outputs.values())))
    return json.dumps(outputs, default=str)


def task_status_reply(execution: ExecutionView) -> ShannonTaskStatus:
    inputs = execution.inputs
    query = inputs.get("query")
    session = inputs.get("session_id") or execution.labels.get(SHANNON_SESSION_LABEL)
    context = inputs.get("context")
    return ShannonTaskStatus(
        task_id=execution.id,
        workflow_id=execution.id,
        status=task_status(execution.state),
        result=task_result(execution),
        error=execution.error,
        created_at=execution.created_at,
        updated_at=execution.ended_at or execution.started_at or execution.created_at,
        query=query if isinstance(query, str) else None,
        session_id=session if isinstance(session, str) else None,
        context=context if isinstance(context, dict) else None,
        metadata={
            "state": execution.state,
            "namespace": execution.namespace,
            "flow_id": execution.flow_id,
            "checkpoint": execution.checkpoint,
            "pause_reason": execution.pause_reason,
            "pause_points": [point.id for point in execution.pause_points],
        },
    )


def task_summary(item: ExecutionSummary) -> ShannonTaskSummary:
    return ShannonTaskSummary(
        task_id=item.id,
        query=item.labels.get(SHANNON_QUERY_LABEL) or f"{item.namespace}/{item.flow_id}",
        status=task_status(item.state),
        created_at=item.created_at,
        completed_at=item.ended_at,
    )


def submit_labels(body: ShannonSubmitBody) -> dict[str, str]:
    labels = {SHANNON_QUERY_LABEL: body.query[:QUERY_LABEL_CHARS]}
    if body.session_id:
        labels[SHANNON_SESSION_LABEL] = body.session_id
    return labels


def submit_inputs(body: ShannonSubmitBody) -> dict[str, Any]:
    """The configured flow's inputs: ``query``, and ``session_id`` and ``context`` when given."""
    inputs: dict[str, Any] = {"query": body.query}
    if body.session_id:
        inputs["session_id"] = body.session_id
    if body.context:
        inputs["context"] = body.context
    return inputs
