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

from pausepoint.api.deps import Caller, IdempotencyKey, call, call_replayed, json_reply
from pausepoint.api.schemas import (
    CancelBody,
    InjectBody,
    PauseBody,
    ResumeBody,
    ReviewBody,
    TerminateBody,
    TerminateReply,
    ValidatedInputs,
    control_request,
)
from pausepoint.models import ControlResult
from pausepoint.service.auth import Principal
from pausepoint.service.operations import ValidateResumeRequest
from pausepoint.service.requests import ControlRequest, VoteRequest

router = APIRouter(prefix="/api/v1/executions", tags=["control"])


async def send(
    request: Request,
    caller: Principal,
    idempotency_key: str | None,
    command: ControlRequest,
    *,
    status_code: int = 202,
    shape: Callable[[ControlResult], dict[str, Any]] | None = None,
) -> JSONResponse:
    """The one path every control route takes: the control plane's chain, then the reply."""
    result, headers = await call_replayed(request, caller, command, idempotency_key)
    if shape is None:
        return json_reply(result, status_code=status_code, headers=headers)
    return JSONResponse(shape(result), status_code=status_code, headers=headers)


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
        control_request(body or PauseBody(), execution_id),
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
        control_request(body or ResumeBody(), execution_id),
    )


@router.post("/{execution_id}/resume/validate", response_model=ValidatedInputs)
async def validate_resume(
    request: Request, execution_id: str, caller: Caller, body: ResumeBody | None = None
) -> ValidatedInputs:
    """Dry run of resume: the typed inputs, or 422 naming each field. Nothing changes."""
    body = body or ResumeBody()
    values = await call(
        request,
        caller,
        ValidateResumeRequest(
            execution_id=execution_id, inputs=body.inputs, pause_id=body.pause_id
        ),
    )
    return ValidatedInputs(inputs=values, pause_id=body.pause_id)


@router.post("/{execution_id}/review", status_code=202, response_model=ControlResult)
async def review(
    request: Request,
    execution_id: str,
    caller: Caller,
    body: ReviewBody,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Vote approve or deny on an approval task's open request (name it with pause_id when
    several are open). The vote that completes the quorum, or a deny, decides it."""
    command = VoteRequest(
        execution_id=execution_id,
        decision=body.decision,
        pause_id=body.pause_id,
        comment=body.comment,
        inputs=body.inputs,
    )
    return await send(request, caller, idempotency_key, command)


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
        control_request(body or CancelBody(), execution_id),
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
        control_request(body, execution_id),
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
        control_request(body, execution_id),
    )
