"""Bulk control: one operation on many executions, by ids or by the list endpoint's filters.

Each execution gets its own result, with the status the single-execution
route would have answered (202/200, 404, 409, 422): one execution's error never
fails the whole request. ``dry_run`` lists what would be touched and changes
nothing, and answers each execution as the real call would (the same admission).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pausepoint.api.deps import Caller, IdempotencyKey, call_replayed
from pausepoint.api.metrics import Metrics
from pausepoint.api.routes.executions import parse_labels
from pausepoint.api.schemas import BulkBody, BulkReply
from pausepoint.service.operations import BulkRequest

router = APIRouter(prefix="/api/v1/executions/bulk", tags=["control"])

BulkOp = Literal["pause", "resume", "cancel", "terminate"]


@router.post("/{op}", response_model=BulkReply)
async def bulk_control(
    request: Request,
    op: BulkOp,
    body: BulkBody,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Pause, resume, cancel or terminate many executions; one result per execution."""
    selected = body.filter
    operation = BulkRequest(
        op=op,
        ids=tuple(body.ids) if body.ids is not None else None,
        states=tuple(s.upper() for s in selected.state) if selected else (),
        namespace=selected.namespace if selected else None,
        flow_id=selected.flow_id if selected else None,
        labels=parse_labels(selected.label) if selected else {},
        reason=body.reason,
        inputs=body.inputs,
        pause_id=body.pause_id,
        by_filter=selected is not None,
        dry_run=body.dry_run,
    )
    reply, headers = await call_replayed(request, caller, operation, idempotency_key)
    count_bulk(request, op, reply, headers)
    return JSONResponse(reply.model_dump(mode="json"), headers=headers)


def count_bulk(request: Request, op: str, reply: BulkReply, headers: dict[str, str]) -> None:
    """Count each execution's outcome as its own control request would have been (a
    replayed reply changed nothing, so counts nothing)."""
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None and not headers:
        for item in reply.results:
            metrics.count_control(op, item.status)
