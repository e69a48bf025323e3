"""Executions: start, list, read, state, audit."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from pausepoint.api.deps import Caller, IdempotencyKey, call, call_replayed
from pausepoint.api.schemas import ExecutionPage, ExecutionSummary, StartExecutionBody
from pausepoint.engine.state import iso
from pausepoint.errors import FieldError, InvalidInput
from pausepoint.models import CommandView, ExecutionView, StateView
from pausepoint.service.operations import (
    AuditRequest,
    GetExecutionRequest,
    GetStateRequest,
    ListExecutionsRequest,
    StartRequest,
)
from pausepoint.service.views import ExecutionRecord

router = APIRouter(prefix="/api/v1/executions", tags=["executions"])


@router.post("", status_code=201, response_model=ExecutionView)
async def start_execution(
    request: Request,
    body: StartExecutionBody,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Start an execution of a flow; inputs are validated and typed (422 names each field)."""
    operation = StartRequest(
        namespace=body.namespace,
        flow_id=body.flow_id,
        inputs=body.inputs,
        labels=body.labels,
        revision=body.revision,
    )
    view, headers = await call_replayed(request, caller, operation, idempotency_key)
    return JSONResponse(view.model_dump(mode="json"), status_code=201, headers=headers)


def summary(record: ExecutionRecord) -> ExecutionSummary:
    duration = None
    if record.started_at is not None:
        end = record.ended_at if record.ended_at is not None else record.updated_at
        duration = int((end - record.started_at) * 1000)
    return ExecutionSummary(
        id=record.id,
        namespace=record.namespace,
        flow_id=record.flow_id,
        flow_revision=record.flow_revision,
        state=record.status,
        labels=record.labels,
        created_at=iso(record.created_at),
        started_at=iso(record.started_at) if record.started_at is not None else None,
        ended_at=iso(record.ended_at) if record.ended_at is not None else None,
        duration_ms=duration,
    )


def encode_cursor(record: ExecutionRecord) -> str:
    return base64.urlsafe_b64encode(f"{record.created_at!r}|{record.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, _, execution_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return float(created), execution_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "invalid cursor", [FieldError(("query", "cursor"), "not a cursor from a previous page")]
        ) from None


def parse_labels(labels: list[str]) -> dict[str, str]:
    parsed = {}
    for label in labels:
        key, sep, value = label.partition(":")
        if not sep or not key:
            raise InvalidInput(
                f"label filter {label!r} must look like key:value",
                [FieldError(("query", "label"), f"{label!r} must look like key:value")],
            )
        parsed[key] = value
    return parsed


@router.get("", response_model=ExecutionPage)
async def list_executions(
    request: Request,
    caller: Caller,
    state: Annotated[list[str], Query(description="Only these states.")] = [],  # noqa: B006
    namespace: str | None = None,
    flow_id: str | None = None,
    label: Annotated[list[str], Query(description="key:value, all must match.")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> ExecutionPage:
    """Executions the caller's organization owns, newest first, a page at a time."""
    operation = ListExecutionsRequest(
        states=tuple(s.upper() for s in state),
        namespace=namespace,
        flow_id=flow_id,
        labels=parse_labels(label),
        limit=limit + 1,
        before=decode_cursor(cursor) if cursor else None,
    )
    records = await call(request, caller, operation)
    page = records[:limit]
    next_cursor = encode_cursor(page[-1]) if len(records) > limit else None
    return ExecutionPage(items=[summary(r) for r in page], next_cursor=next_cursor)


@router.get("/{execution_id}", response_model=ExecutionView)
async def get_execution(request: Request, execution_id: str, caller: Caller) -> ExecutionView:
    """Task runs, outputs, open pause points (with their onResume JSON Schema), context."""
    return await call(request, caller, GetExecutionRequest(execution_id=execution_id))


@router.get("/{execution_id}/state", response_model=StateView)
async def get_state(request: Request, execution_id: str, caller: Caller) -> StateView:
    return await call(request, caller, GetStateRequest(execution_id=execution_id))


@router.get("/{execution_id}/audit", response_model=list[CommandView])
async def get_audit(request: Request, execution_id: str, caller: Caller) -> list[CommandView]:
    """Every control request: who, when, why, request id, idempotency key, states, result."""
    return await call(request, caller, AuditRequest(execution_id=execution_id))
