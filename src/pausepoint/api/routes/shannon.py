"""Shannon's task control: ``POST /api/v1/tasks/{id}/pause|resume|cancel`` → 202
``{success, message, task_id}``, errors ``{"error": …}``; ``GET /api/v1/tasks/{id}/control-state``.
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
    ShannonControlState,
    ShannonError,
    ShannonReply,
    control_request,
)
from pausepoint.errors import PausepointError, Unauthorized
from pausepoint.models import ControlResult
from pausepoint.service.operations import AuditRequest, GetStateRequest

router = APIRouter(tags=["Shannon"])


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
