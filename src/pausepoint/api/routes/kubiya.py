"""Kubiya's control plane: ``POST /api/v1/executions/{id}/message`` ``{message, role}``
(the same as inject)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pausepoint.api.deps import Caller, IdempotencyKey
from pausepoint.api.routes.control import send
from pausepoint.api.schemas import KubiyaMessageBody, control_request
from pausepoint.models import ControlResult

router = APIRouter(tags=["Kubiya"])


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
