"""The seed systems' control routes, over the same handlers as pausepoint's own.

- Shannon: ``POST /api/v1/tasks/{id}/pause|resume|cancel`` → 202
  ``{success, message, task_id}``, errors ``{"error": …}``;
  ``GET /api/v1/tasks/{id}/control-state``.
- Kubiya: ``POST /api/v1/executions/{id}/message`` ``{message, role}`` (= inject).
- Syntropic137: ``POST /executions/{id}/pause|resume|cancel|inject`` and
  ``GET /executions/{id}/state`` (no ``/api/v1`` prefix), replies
  ``{success, execution_id, state, message, error}``.

Malformed bodies stay FastAPI's 422 ``{"detail": [{loc, msg, type}]}``, as the seeds document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from pausepoint.api.app import RATE_LIMITED
from pausepoint.api.deps import Caller, IdempotencyKey, call, principal_of
from pausepoint.api.routes.control import send
from pausepoint.api.schemas import (
    CancelBody,
    InjectBody,
    KubiyaMessageBody,
    PauseBody,
    ResumeBody,
    ShannonControlState,
    ShannonError,
    ShannonReply,
    SyntropicReply,
    SyntropicState,
    control_request,
)
from pausepoint.errors import InvalidInput, PausepointError, Unauthorized
from pausepoint.models import ControlResult
from pausepoint.service.auth import Principal
from pausepoint.service.operations import AuditRequest, GetStateRequest
from pausepoint.service.requests import ControlRequest

router = APIRouter(tags=["compatibility"])


async def caller_or_error(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="An API key.")] = None,
    authorization: Annotated[str | None, Header(description="Bearer <API key or JWT>.")] = None,
) -> Principal | PausepointError:
    """The caller, or the authentication error for the route to render in its seed's shape."""
    try:
        return await principal_of(request, x_api_key, authorization)
    except PausepointError as error:
        return error


SoftCaller = Annotated[Principal | PausepointError, Depends(caller_or_error)]


async def control_as(
    request: Request,
    caller: Principal | PausepointError,
    idempotency_key: str | None,
    command: ControlRequest,
    *,
    shape: Callable[[ControlResult], dict[str, Any]],
    error: Callable[[PausepointError], JSONResponse],
) -> JSONResponse:
    if isinstance(caller, PausepointError):
        return error(caller)
    try:
        return await send(request, caller, idempotency_key, command, shape=shape)
    except InvalidInput as invalid:
        if invalid.errors:
            raise  # FastAPI's 422 shape, which every seed documents
        return error(invalid)
    except PausepointError as failure:
        return error(failure)


# -- Shannon --------------------------------------------------------------------------

SHANNON_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: {"model": ShannonError} for status in (401, 403, 404, 409)},
    429: RATE_LIMITED,
}
SHANNON_WORDS = {401: "Unauthorized", 403: "Forbidden", 404: "Task not found"}


def shannon_error(task_id: str) -> Callable[[PausepointError], JSONResponse]:
    def render(error: PausepointError) -> JSONResponse:
        status = error.http_status
        message = SHANNON_WORDS.get(status) or error.message.replace(f"execution {task_id}", "task")
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    return render


def shannon_reply(task_id: str, message: str) -> Callable[[ControlResult], dict[str, Any]]:
    return lambda _: ShannonReply(success=True, message=message, task_id=task_id).model_dump()


@router.post(
    "/api/v1/tasks/{task_id}/pause",
    status_code=202,
    response_model=ShannonReply,
    responses=SHANNON_ERRORS,
)
async def shannon_pause(
    request: Request,
    task_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: PauseBody | None = None,
) -> JSONResponse:
    """Shannon: pause the task at its next checkpoint."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body or PauseBody(), task_id),
        shape=shannon_reply(task_id, "Pause signal sent"),
        error=shannon_error(task_id),
    )


@router.post(
    "/api/v1/tasks/{task_id}/resume",
    status_code=202,
    response_model=ShannonReply,
    responses=SHANNON_ERRORS,
)
async def shannon_resume(
    request: Request,
    task_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: ResumeBody | None = None,
) -> JSONResponse:
    """Shannon: resume a paused task."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body or ResumeBody(), task_id),
        shape=shannon_reply(task_id, "Resume signal sent"),
        error=shannon_error(task_id),
    )


@router.post(
    "/api/v1/tasks/{task_id}/cancel",
    status_code=202,
    response_model=ShannonReply,
    responses=SHANNON_ERRORS,
)
async def shannon_cancel(
    request: Request,
    task_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: CancelBody | None = None,
) -> JSONResponse:
    """Shannon: cancel the task cooperatively."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body or CancelBody(), task_id),
        shape=shannon_reply(task_id, "Cancel signal sent"),
        error=shannon_error(task_id),
    )


@router.get(
    "/api/v1/tasks/{task_id}/control-state",
    response_model=ShannonControlState,
    responses=SHANNON_ERRORS,
)
async def shannon_control_state(
    request: Request, task_id: str, caller: SoftCaller
) -> ShannonControlState | JSONResponse:
    """Shannon: the task's state, whether it is paused or cancelled, since when, by whom, why."""
    if isinstance(caller, PausepointError):
        return shannon_error(task_id)(caller)
    try:
        state = await call(request, caller, GetStateRequest(execution_id=task_id))
        commands = await call(request, caller, AuditRequest(execution_id=task_id))
    except PausepointError as error:
        return shannon_error(task_id)(error)
    # The newest accepted pause and cancel (or terminate) say when, by whom and why;
    # a refused one changed nothing.
    accepted = [c for c in commands if c.status != "rejected"]
    pause = next((c for c in reversed(accepted) if c.kind == "pause"), None)
    stop = next((c for c in reversed(accepted) if c.kind in ("cancel", "terminate")), None)
    is_paused = state.state in ("PAUSING", "PAUSED")
    is_cancelled = state.state in ("CANCELLING", "CANCELLED", "TERMINATED")
    return ShannonControlState(
        task_id=task_id,
        state=state.state,
        paused=state.state == "PAUSED",
        checkpoint=state.checkpoint,
        pause_reason=state.pause_reason,
        is_paused=is_paused,
        is_cancelled=is_cancelled,
        paused_at=pause.created_at if is_paused and pause else None,
        paused_by=pause.actor if is_paused and pause else None,
        cancel_reason=stop.reason if is_cancelled and stop else None,
        cancelled_by=stop.actor if is_cancelled and stop else None,
    )


# -- Kubiya ---------------------------------------------------------------------------


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


# -- Syntropic137 -----------------------------------------------------------------------

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
    body: InjectBody,
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
