"""Control: pause, resume, cancel, terminate, inject (ARCHITECTURE §3), and resume dry runs.

Every accepted command is durable before the reply. 202 means accepted (and,
when it could be applied within the wait, applied: see ``applied``); 409 names
the state that forbids it; 422 names the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pausepoint.api.deps import Caller, IdempotencyKey, remember, replay, request_id, scoped
from pausepoint.api.schemas import (
    CancelBody,
    InjectBody,
    PauseBody,
    ResumeBody,
    TerminateBody,
    TerminateReply,
    ValidatedInputs,
)
from pausepoint.models import ControlResult
from pausepoint.service.auth import Principal
from pausepoint.service.requests import (
    ControlRequest,
)

router = APIRouter(prefix="/api/v1/executions", tags=["control"])

Build = Callable[[dict[str, Any]], ControlRequest]


async def send(
    request: Request,
    caller: Principal,
    idempotency_key: str | None,
    build: Build,
    *,
    status_code: int = 202,
    shape: Callable[[ControlResult], dict[str, Any]] | None = None,
) -> JSONResponse:
    """Authorize, replay or record, apply: the one path every control route takes."""
    caller.require("operator", "controlling an execution")
    replayed = await replay(request, caller, idempotency_key)
    if replayed is not None:
        return replayed
    common = {
        "actor": caller.subject,
        "idempotency_key": idempotency_key,
        "request_id": request_id(request),
    }
    result = await scoped(request, caller).control(build(common))
    payload = shape(result) if shape else result.model_dump(mode="json")
    await remember(request, caller, idempotency_key, status_code, payload)
    return JSONResponse(payload, status_code=status_code)


@router.post("/{execution_id}/pause", status_code=202, response_model=ControlResult)
async def pause(
    request: Request,
    execution_id: str,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
    body: PauseBody | None = None,
) -> JSONResponse:
    """Pause at the next checkpoint: in-flight work finishes, nothing new starts."""
    return await send(
        request,
        caller,
        idempotency_key,
        lambda c: (body or PauseBody()).request(execution_id, **c),
    )


@router.post("/{execution_id}/resume", status_code=202, response_model=ControlResult)
async def resume(
    request: Request,
    execution_id: str,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
    body: ResumeBody | None = None,
) -> JSONResponse:
    """Resume a pause point (name it with pause_id when several are open)."""
    return await send(
        request,
        caller,
        idempotency_key,
        lambda c: (body or ResumeBody()).request(execution_id, **c),
    )


@router.post("/{execution_id}/resume/validate", response_model=ValidatedInputs)
async def validate_resume(
    request: Request, execution_id: str, caller: Caller, body: ResumeBody | None = None
) -> ValidatedInputs:
    """Dry run of resume: the typed inputs, or 422 naming each field. Nothing changes."""
    caller.require("operator", "resuming an execution")
    body = body or ResumeBody()
    values = await scoped(request, caller).validate_resume(execution_id, body.inputs, body.pause_id)
    return ValidatedInputs(inputs=values, pause_id=body.pause_id)


@router.post("/{execution_id}/cancel", status_code=202, response_model=ControlResult)
async def cancel(
    request: Request,
    execution_id: str,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
    body: CancelBody | None = None,
) -> JSONResponse:
    """Cancel cooperatively: in-flight work is asked to stop, then `finally` tasks run."""
    return await send(
        request,
        caller,
        idempotency_key,
        lambda c: (body or CancelBody()).request(execution_id, **c),
    )


def terminate_shape(result: ControlResult) -> dict[str, Any]:
    return TerminateReply(
        success=True,
        execution_id=result.execution_id,
        workflow_id=result.execution_id,
        state=result.state,
        terminated_at=result.terminated_at,
        message=result.message,
        command_id=result.command_id,
    ).model_dump(mode="json")


@router.post("/{execution_id}/terminate", response_model=TerminateReply)
async def terminate(
    request: Request,
    execution_id: str,
    body: TerminateBody,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Stop at once with a reason: in-flight work is killed, nothing else runs."""
    return await send(
        request,
        caller,
        idempotency_key,
        lambda c: body.request(execution_id, **c),
        status_code=200,
        shape=terminate_shape,
    )


@router.post("/{execution_id}/inject", status_code=202, response_model=ControlResult)
async def inject(
    request: Request,
    execution_id: str,
    body: InjectBody,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Append a message to the execution's context (agents see it at their next turn)."""
    return await send(
        request,
        caller,
        idempotency_key,
        lambda c: body.request(execution_id, **c),
    )
