"""Kubiya's control plane (its server, ``kubiya-control-plane-api``, ``app/routers/executions.py``).

- ``POST /api/v1/executions/{id}/message`` ``{message, role}``: the same as inject.
- ``GET /api/v1/executions/{id}/stream``: the execution's events live, in Kubiya's names.
- ``POST /api/v1/executions/batch/terminate`` ``{execution_ids, reason}``: one result each.

Pause, resume, cancel and terminate share Kubiya's paths with pausepoint's own routes
(``routes/control.py``), whose replies carry every field of Kubiya's. Errors are
FastAPI's ``{"detail": …}`` as Kubiya's are (pausepoint adds a ``code``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from pausepoint.api.deps import Caller, IdempotencyKey, call, call_replayed
from pausepoint.api.kubiya_shapes import (
    KubiyaBatchTerminateBody,
    KubiyaBatchTerminateReply,
    KubiyaFrames,
    batch_terminate_reply,
    connected_frame,
    parse_event_id,
)
from pausepoint.api.routes.bulk import count_bulk
from pausepoint.api.routes.control import send
from pausepoint.api.routes.events import SSE_HEADERS, timing
from pausepoint.api.schemas import KubiyaMessageBody, control_request
from pausepoint.api.sse import execution_events
from pausepoint.models import ControlResult
from pausepoint.service.operations import BulkRequest, OpenStreamRequest

router = APIRouter(tags=["Kubiya"])
# Included before the control routes, so that ``batch`` is never read as an execution id.
batch = APIRouter(tags=["Kubiya"])

KUBIYA_FRAMES = KubiyaFrames()


@router.post(
    "/api/v1/executions/{execution_id}/message", status_code=202, response_model=ControlResult
)
async def kubiya_message(
    request: Request,
    execution_id: str,
    body: KubiyaMessageBody,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kubiya: send a message to a running execution (the same as inject)."""
    return await send(
        request,
        caller,
        idempotency_key,
        control_request(body, execution_id),
    )


@router.get(
    "/api/v1/executions/{execution_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Kubiya's SSE: ``connected``, then ``status``, ``message``, "
            "``message_chunk``, ``tool_started``, ``tool_completed``, ``error``, ``done``.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def kubiya_stream(
    request: Request,
    execution_id: str,
    caller: Caller,
    last_event_id: Annotated[
        str | None, Query(max_length=300, description="Resume after this event id.")
    ] = None,
    last_event_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=300)] = None,
) -> StreamingResponse:
    """Kubiya: the execution's events live, in Kubiya's names, ending with ``done``."""
    resume = parse_event_id(last_event_id, execution_id, ("query", "last_event_id"))
    if resume is None:
        resume = parse_event_id(last_event_header, execution_id, ("header", "Last-Event-ID"))
    engine = await call(request, caller, OpenStreamRequest(execution_id=execution_id))
    state = (await engine.state(execution_id)).state
    frames = execution_events(
        engine, execution_id, after=resume or 0, timing=timing(request), style=KUBIYA_FRAMES
    )

    async def connected_then_events() -> AsyncIterator[str | bytes]:
        yield connected_frame(execution_id, caller.org_id, state)
        async for text in frames:
            yield text

    return StreamingResponse(
        connected_then_events(), media_type="text/event-stream", headers=SSE_HEADERS
    )


@batch.post("/api/v1/executions/batch/terminate", response_model=KubiyaBatchTerminateReply)
async def kubiya_batch_terminate(
    request: Request,
    body: KubiyaBatchTerminateBody,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kubiya: terminate many executions; each gets its own result, one's failure
    (unknown, another organization's, already ended) never fails the others."""
    operation = BulkRequest(op="terminate", ids=tuple(body.execution_ids), reason=body.reason)
    reply, headers = await call_replayed(request, caller, operation, idempotency_key)
    count_bulk(request, "terminate", reply, headers)
    shaped = batch_terminate_reply(body.execution_ids, reply)
    return JSONResponse(shaped.model_dump(mode="json"), headers=headers)
