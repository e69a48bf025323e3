"""Kubiya's shapes and names: its stream's events, its batch terminate.

The names and fields are those of Kubiya's control-plane server, published as
``kubiya-control-plane-api`` (AGPL-3.0; read, not copied): the stream's events in
``app/routers/executions/streaming/event_formatter.py``, the batch models in
``app/schemas/worker_queue_observability_schemas.py``. Plain functions map
pausepoint's events to Kubiya's; nothing here decides anything, it only renames.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pausepoint.errors import FieldError, InvalidInput
from pausepoint.models import EventView, PublicModel
from pausepoint.service.engine import event_view
from pausepoint.service.feed import EventRecord
from pausepoint.states import ExecutionState as S
from pausepoint.wire import BulkReply

# -- statuses ------------------------------------------------------------------------

# Kubiya's execution statuses (its models/execution.py ExecutionStatus). It has no
# PAUSING or CANCELLING: an execution runs until the pause or the cancel lands; a
# terminate marks it cancelled, as Kubiya's own terminate does.
STATUS: dict[S, str] = {
    S.QUEUED: "queued",
    S.RUNNING: "running",
    S.PAUSING: "running",
    S.PAUSED: "paused",
    S.CANCELLING: "running",
    S.COMPLETED: "completed",
    S.WARNING: "completed",
    S.FAILED: "failed",
    S.CANCELLED: "cancelled",
    S.TERMINATED: "cancelled",
    S.TIMED_OUT: "failed",
}


def kubiya_status(state: str) -> str:
    return STATUS[S(state)]


# -- the stream's events -------------------------------------------------------------

# pausepoint's workflow events that change the status, and the status they show.
STATUS_EVENTS: dict[str, str] = {
    "workflow.started": "running",
    "workflow.pausing": "running",
    "workflow.paused": "paused",
    "workflow.resumed": "running",
    "workflow.cancelling": "running",
    "workflow.recovered": "running",
}
# Paused on a Pause task (or an agent's approval) is waiting for someone's input.
WAITING_CHECKPOINT = "pause_task"
# The terminal events: the final status, then Kubiya's closing ``done``.
FINAL_STATUS: dict[str, str] = {
    "workflow.completed": "completed",
    "workflow.failed": "failed",
    "workflow.timed_out": "failed",
    "workflow.cancelled": "cancelled",
    "workflow.terminated": "cancelled",
}
# A flow's tasks show as Kubiya's tool events (the nearest Kubiya has to a step).
TASK_ENDINGS: dict[str, str] = {
    "task.completed": "completed",
    "task.failed": "failed",
    "task.cancelled": "cancelled",
    "task.skipped": "skipped",
}


def event_id(event: EventView) -> str:
    """Kubiya's event id ``{execution_id}_{counter}_{timestamp_micros}``; the counter is
    the event's sequence number, so a reconnect resumes right after it."""
    try:
        micros = int(datetime.fromisoformat(event.at).timestamp() * 1_000_000)
    except ValueError:
        micros = 0
    return f"{event.execution_id}_{event.seq}_{micros}"


def parse_event_id(value: str | None, execution_id: str, where: tuple[str, str]) -> int | None:
    """The sequence number a Kubiya client resumes after: from one of this stream's ids
    (``{execution_id}_{seq}_{micros}``) or a bare sequence number; 422 naming ``where``
    for anything else, another execution's id included (Kubiya would start over)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    head = text.rpartition("_")[0]  # less the timestamp
    owner, _, seq = head.rpartition("_")
    if owner == execution_id and seq.isascii() and seq.isdigit() and len(seq) <= 18:
        return int(seq)
    raise InvalidInput(
        f"{where[1]} {value!r} is not an event id of this execution's stream",
        [FieldError(where, f"expected '{execution_id}_<counter>_<micros>'", "value_error")],
    )


def _tool_started(name: Any, run_id: Any, tool_input: Any, at: str) -> tuple[str, dict[str, Any]]:
    data = {"tool_name": name, "tool_execution_id": run_id, "tool_input": tool_input}
    return "tool_started", {"data": data, "timestamp": at}


def _tool_completed(
    name: Any, run_id: Any, output: Any, status: str, at: str
) -> tuple[str, dict[str, Any]]:
    data = {
        "tool_name": name,
        "tool_execution_id": run_id,
        "tool_output": output,
        "tool_status": status,
    }
    return "tool_completed", {"data": data, "timestamp": at}


def kubiya_events(event: EventView) -> list[tuple[str, dict[str, Any]]]:
    """The Kubiya events (name, data) that show one pausepoint event; [] for none.

    Every payload also names the pausepoint event as ``pausepoint_event``.
    """
    data, kind, at, eid = event.data, event.type, event.at, event.execution_id
    shown: list[tuple[str, dict[str, Any]]] = []
    if kind in STATUS_EVENTS:
        status = STATUS_EVENTS[kind]
        if kind == "workflow.paused" and data.get("checkpoint") == WAITING_CHECKPOINT:
            status = "waiting_for_input"
        shown.append(("status", {"status": status, "execution_id": eid}))
    elif kind in FINAL_STATUS:
        final = FINAL_STATUS[kind]
        if final == "failed":
            error_type = "timeout_error" if kind == "workflow.timed_out" else "execution_error"
            error = data.get("error") or data.get("reason") or kind
            failure = {"error": error, "error_type": error_type, "execution_id": eid}
            shown.append(("error", {**failure, "status": "failed"}))
        else:
            shown.append(("status", {"status": final, "execution_id": eid}))
        shown.append(("done", {"execution_id": eid, "workflow_status": final}))
    elif kind == "task.started":
        shown.append(_tool_started(data.get("task_id"), data.get("task_run_id"), {}, at))
    elif kind in TASK_ENDINGS:
        output = data.get("outputs") if kind == "task.completed" else data.get("error")
        ending = TASK_ENDINGS[kind]
        shown.append(
            _tool_completed(data.get("task_id"), data.get("task_run_id"), output, ending, at)
        )
    elif kind == "agent.tool_call":
        call = (data.get("name"), data.get("tool_call_id"), data.get("arguments"), at)
        shown.append(_tool_started(*call))
    elif kind == "agent.tool_result":
        status = "failed" if data.get("error") else "completed"
        result = (data.get("name"), data.get("tool_call_id"), data.get("content"), status, at)
        shown.append(_tool_completed(*result))
    elif kind == "context.injected":
        message = {"role": data.get("role"), "content": data.get("message")}
        shown.append(
            ("message", {**message, "timestamp": at, "message_id": data.get("command_id")})
        )
    elif kind == "agent.message":
        message_id = f"{data.get('task_run_id')}:{data.get('turn')}"
        message = {"role": "assistant", "content": data.get("content"), "timestamp": at}
        shown.append(("message", {**message, "message_id": message_id}))
    elif kind == "agent.delta":
        chunk = {"content": data.get("content"), "is_final": False}
        shown.append(("message_chunk", {"data": chunk, "timestamp": at}))
    for _, payload in shown:
        payload["pausepoint_event"] = kind
    return shown


def connected_frame(execution_id: str, organization_id: str, state: str) -> str:
    """Kubiya's first frame: the connection is open, and the execution's status."""
    data = {
        "execution_id": execution_id,
        "organization_id": organization_id,
        "status": kubiya_status(state),
        "connected_at": time.time(),
    }
    return f"event: connected\ndata: {json.dumps(data)}\n\n"


@dataclass(frozen=True)
class KubiyaFrames:
    """SSE frames in Kubiya's shape: ``id: {execution_id}_{seq}_{micros}``,
    ``event: <name>``, ``data: {…}``. When one event shows as several (a final status,
    then ``done``), the last carries the id, so a reconnect resumes after them all."""

    def _frames(self, event: EventView, with_id: bool) -> str:
        shown = kubiya_events(event)
        frames = []
        for n, (name, data) in enumerate(shown):
            head = f"id: {event_id(event)}\n" if with_id and n == len(shown) - 1 else ""
            frames.append(f"{head}event: {name}\ndata: {json.dumps(data, default=str)}\n\n")
        return "".join(frames)

    def stored(self, event: EventView) -> str:
        return self._frames(event, with_id=True)

    def live_only(self, record: EventRecord) -> str:
        return self._frames(event_view(record), with_id=False)


# -- batch terminate -----------------------------------------------------------------


class KubiyaBatchTerminateBody(BaseModel):
    """Kubiya's BatchTerminateRequest: 1-100 execution ids and a reason."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"execution_ids": ["x"], "reason": "runaway"}]},
    )

    execution_ids: list[str] = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)


class KubiyaBatchTerminateResult(PublicModel):
    """Kubiya's BatchTerminateResult, plus the execution's state after the call."""

    execution_id: str
    success: bool
    workflow_id: str | None = None
    error: str | None = None
    terminated_at: str | None = None
    state: str | None = None


class KubiyaBatchTerminateReply(PublicModel):
    """Kubiya's BatchTerminateResponse."""

    total_requested: int
    total_succeeded: int
    total_failed: int
    results: list[KubiyaBatchTerminateResult]


def batch_terminate_reply(requested: list[str], reply: BulkReply) -> KubiyaBatchTerminateReply:
    """The bulk terminate's results in Kubiya's shape, one per id asked for (a repeated id
    was terminated once, and answers each time it was asked)."""
    by_id = {item.execution_id: item for item in reply.results}
    results = []
    for execution_id in requested:
        item = by_id[execution_id]
        ok = item.status < 300
        results.append(
            KubiyaBatchTerminateResult(
                execution_id=execution_id,
                success=ok,
                workflow_id=execution_id if ok else None,
                error=None if ok else item.message,
                terminated_at=item.terminated_at,
                state=item.state,
            )
        )
    succeeded = sum(result.success for result in results)
    return KubiyaBatchTerminateReply(
        total_requested=len(requested),
        total_succeeded=succeeded,
        total_failed=len(results) - succeeded,
        results=results,
    )
