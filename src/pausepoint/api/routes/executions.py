"""Executions: start, list, read, state, audit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from pausepoint.api.deps import Caller, IdempotencyKey, call, call_replayed, json_reply
from pausepoint.api.schemas import ExecutionPage, StartExecutionBody
from pausepoint.errors import FieldError, InvalidInput
from pausepoint.models import CommandView, ExecutionView, StateView
from pausepoint.service.operations import (
    AuditRequest,
    GetExecutionRequest,
    GetStateRequest,
    ListExecutionsRequest,
    StartRequest,
)

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
    parent: Annotated[
        str | None, Query(description="Only the executions this execution's subflows started.")
    ] = None,
    root: Annotated[
        str | None, Query(description="Only the descendants of this execution (its whole tree).")
    ] = None,
) -> ExecutionPage:
    """Executions the caller's organization owns, newest first, a page at a time."""
    operation = ListExecutionsRequest(
        states=tuple(s.upper() for s in state),
        namespace=namespace,
        flow_id=flow_id,
        labels=parse_labels(label),
        limit=limit,
        cursor=cursor,
        parent_id=parent,
        root_id=root,
    )
    return await call(request, caller, operation)


@router.get("/{execution_id}", response_model=ExecutionView)
async def get_execution(request: Request, execution_id: str, caller: Caller) -> ExecutionView:
    """Task runs, outputs, open pause points (with their onResume JSON Schema), context."""
    return await call(request, caller, GetExecutionRequest(execution_id=execution_id))


@router.get("/{execution_id}/state", response_model=StateView)
async def get_state(request: Request, execution_id: str, caller: Caller) -> JSONResponse:
    view = await call(request, caller, GetStateRequest(execution_id=execution_id))
    return json_reply(view)


@router.get("/{execution_id}/audit", response_model=list[CommandView])
async def get_audit(request: Request, execution_id: str, caller: Caller) -> list[CommandView]:
    """Every control request: who, when, why, request id, idempotency key, states, result."""
    return await call(request, caller, AuditRequest(execution_id=execution_id))
