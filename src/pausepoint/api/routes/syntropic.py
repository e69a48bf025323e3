"""Syntropic137's execution control: ``POST /executions/{id}/pause|resume|cancel|inject``
and ``GET /executions/{id}/state`` (no ``/api/v1`` prefix), replies
``{success, execution_id, state, message, error}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pausepoint.api.app import RATE_LIMITED
from pausepoint.api.deps import IdempotencyKey, call
from pausepoint.api.routes.dialect import SoftCaller, control_as
from pausepoint.api.schemas import (
    CancelBody,
    PauseBody,
    ResumeBody,
    SyntropicInjectBody,
    SyntropicReply,
    SyntropicState,
    control_request,
)
from pausepoint.errors import PausepointError, Unauthorized
from pausepoint.models import ControlResult
from pausepoint.service.operations import GetStateRequest

router = APIRouter(tags=["Syntropic137"])


SYNTROPIC_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: {"model": SyntropicReply} for status in (401, 403, 404, 409)},
    429: RATE_LIMITED,
}


def syntropic_error(execution_id: str) -> Callable[[PausepointError], JSONResponse]:
    def render(error: PausepointError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
        body = SyntropicReply(success=False, execution_id=execution_id, error=error.message)
        return JSONResponse(body.model_dump(), status_code=error.http_status, headers=headers)

    return render


def syntropic_reply(result: ControlResult) -> dict[str, Any]:
    return SyntropicReply(
        success=True, execution_id=result.execution_id, state=result.state, message=result.message
    ).model_dump()


@router.post(
    "/executions/{execution_id}/pause",
    status_code=202,
    response_model=SyntropicReply,
    responses=SYNTROPIC_ERRORS,
)
async def syntropic_pause(
    request: Request,
    execution_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: PauseBody | None = None,
) -> JSONResponse:
    """Syntropic137: pause at the next checkpoint."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body or PauseBody(), execution_id),
        shape=syntropic_reply,
        error=syntropic_error(execution_id),
    )


@router.post(
    "/executions/{execution_id}/resume",
    status_code=202,
    response_model=SyntropicReply,
    responses=SYNTROPIC_ERRORS,
)
async def syntropic_resume(
    request: Request,
    execution_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: ResumeBody | None = None,
) -> JSONResponse:
    """Syntropic137: resume a paused execution."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body or ResumeBody(), execution_id),
        shape=syntropic_reply,
        error=syntropic_error(execution_id),
    )


@router.post(
    "/executions/{execution_id}/cancel",
    status_code=202,
    response_model=SyntropicReply,
    responses=SYNTROPIC_ERRORS,
)
async def syntropic_cancel(
    request: Request,
    execution_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: CancelBody | None = None,
) -> JSONResponse:
    """Syntropic137: cancel cooperatively."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body or CancelBody(), execution_id),
        shape=syntropic_reply,
        error=syntropic_error(execution_id),
    )


@router.post(
    "/executions/{execution_id}/inject",
    status_code=202,
    response_model=SyntropicReply,
    responses=SYNTROPIC_ERRORS,
)
async def syntropic_inject(
    request: Request,
    execution_id: str,
    body: SyntropicInjectBody,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Syntropic137: inject a message into the execution's context."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body, execution_id),
        shape=syntropic_reply,
        error=syntropic_error(execution_id),
    )


@router.get(
    "/executions/{execution_id}/state",
    response_model=SyntropicState,
    responses=SYNTROPIC_ERRORS,
)
async def syntropic_state(
    request: Request, execution_id: str, caller: SoftCaller
) -> SyntropicState | JSONResponse:
    """Syntropic137: the execution's state."""
    if isinstance(caller, PausepointError):
        return syntropic_error(execution_id)(caller)
    try:
        state = await call(request, caller, GetStateRequest(execution_id=execution_id))
    except PausepointError as error:
        return syntropic_error(execution_id)(error)
    return SyntropicState(execution_id=execution_id, state=state.state)
