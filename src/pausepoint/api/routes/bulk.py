"""Bulk control: one operation on many executions, by ids or by the list endpoint's filters.

Each execution gets its own result, with the status the single-execution
route would have answered (202/200, 404, 409, 422): one execution's error never
fails the whole request. ``dry_run`` lists what would be touched and changes
nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pausepoint.api.deps import Caller, IdempotencyKey, remember, replay, request_id, scoped
from pausepoint.api.metrics import Metrics
from pausepoint.api.routes.executions import parse_labels
from pausepoint.api.schemas import BulkBody, BulkItem, BulkReply
from pausepoint.errors import FieldError, InvalidInput, PausepointError
from pausepoint.service.engine import Engine
from pausepoint.service.requests import (
    CancelRequest,
    ControlRequest,
    PauseRequest,
    ResumeRequest,
    TerminateRequest,
)

router = APIRouter(prefix="/api/v1/executions/bulk", tags=["control"])

BulkOp = Literal["pause", "resume", "cancel", "terminate"]
MAX_MATCHED = 1000
CONCURRENCY = 16
TERMINAL_STATES = frozenset(
    {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}
)


def check_body(op: BulkOp, body: BulkBody) -> None:
    errors = []
    if (body.ids is None) == (body.filter is None):
        errors.append(FieldError(("body",), "give exactly one of 'ids' and 'filter'"))
    if op == "terminate" and not (body.reason and body.reason.strip()):
        errors.append(FieldError(("body", "reason"), "terminate needs a reason", "missing"))
    if op != "resume":
        if body.inputs:
            errors.append(FieldError(("body", "inputs"), "only resume takes inputs", "extra"))
        if body.pause_id is not None:
            errors.append(FieldError(("body", "pause_id"), "only resume takes a pause_id", "extra"))
    if errors:
        raise InvalidInput("; ".join(str(e) for e in errors), errors)


async def targets(engine: Engine, body: BulkBody) -> list[str]:
    if body.ids is not None:
        return list(dict.fromkeys(body.ids))
    assert body.filter is not None
    records = await engine.list_executions(
        states=[s.upper() for s in body.filter.state],
        namespace=body.filter.namespace,
        flow_id=body.filter.flow_id,
        labels=parse_labels(body.filter.label),
        limit=MAX_MATCHED,
    )
    return [r.id for r in records]


def build(
    op: BulkOp, execution_id: str, body: BulkBody, actor: str, request_id: str | None
) -> ControlRequest:
    common: dict[str, Any] = {"actor": actor, "request_id": request_id}
    if op == "pause":
        return PauseRequest(execution_id=execution_id, reason=body.reason, **common)
    if op == "resume":
        return ResumeRequest(
            execution_id=execution_id,
            inputs=body.inputs,
            pause_id=body.pause_id,
            reason=body.reason,
            **common,
        )
    if op == "cancel":
        return CancelRequest(execution_id=execution_id, reason=body.reason, **common)
    return TerminateRequest(execution_id=execution_id, reason=body.reason, **common)


async def state_or_none(engine: Engine, execution_id: str) -> str | None:
    try:
        return (await engine.state(execution_id)).state
    except PausepointError:
        return None


async def preview(engine: Engine, op: BulkOp, execution_id: str) -> BulkItem:
    """What a real run would do, as far as it can be told without trying: nothing changes."""
    try:
        state = (await engine.state(execution_id)).state
    except PausepointError as error:
        return BulkItem(execution_id=execution_id, status=error.http_status, message=error.message)
    if state in TERMINAL_STATES:
        return BulkItem(
            execution_id=execution_id,
            status=409,
            state=state,
            message=f"cannot {op} {state.lower()} execution {execution_id}",
        )
    return BulkItem(
        execution_id=execution_id, status=200, state=state, message=f"would {op} (dry run)"
    )


@router.post("/{op}", response_model=BulkReply)
async def bulk_control(
    request: Request,
    op: BulkOp,
    body: BulkBody,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Pause, resume, cancel or terminate many executions; one result per execution."""
    caller.require("operator", "controlling executions")
    check_body(op, body)
    replayed = await replay(request, caller, idempotency_key)
    if replayed is not None:
        return replayed
    engine = scoped(request, caller)
    ids = await targets(engine, body)
    gate = asyncio.Semaphore(CONCURRENCY)
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    actor, request_ref = caller.subject, request_id(request)

    async def apply(execution_id: str) -> BulkItem:
        async with gate:
            if body.dry_run:
                return await preview(engine, op, execution_id)
            try:
                result = await engine.control(build(op, execution_id, body, actor, request_ref))
            except PausepointError as error:
                item = BulkItem(
                    execution_id=execution_id,
                    status=error.http_status,
                    state=await state_or_none(engine, execution_id),
                    message=error.message,
                )
            else:
                item = BulkItem(
                    execution_id=execution_id,
                    status=200 if op == "terminate" else 202,
                    state=result.state,
                    message=result.message,
                )
            if metrics is not None:
                metrics.count_control(op, item.status)
            return item

    results = await asyncio.gather(*(apply(i) for i in ids))
    payload = BulkReply(dry_run=body.dry_run, results=list(results)).model_dump(mode="json")
    await remember(request, caller, idempotency_key, 200, payload)
    return JSONResponse(payload)
