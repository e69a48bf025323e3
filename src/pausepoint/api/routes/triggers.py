"""Triggers: list a flow's triggers, pause and resume them (Kestra's trigger toggle).

Pausing and resuming are operator actions through the control plane (roles,
tenancy, audit). Webhooks are Kestra's routes (``routes/kestra.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Request

from pausepoint.api.deps import Caller, call
from pausepoint.models import TriggerView
from pausepoint.service.operations import (
    ListTriggersRequest,
    PauseTriggerRequest,
    ResumeTriggerRequest,
)

router = APIRouter(prefix="/api/v1/flows", tags=["triggers"])


@router.get("/{namespace}/{flow_id}/triggers", response_model=list[TriggerView])
async def list_triggers(
    request: Request, namespace: str, flow_id: str, caller: Caller
) -> list[TriggerView]:
    """The flow's triggers and their state: next tick, last fired, paused or not."""
    return await call(request, caller, ListTriggersRequest(namespace=namespace, flow_id=flow_id))


@router.post("/{namespace}/{flow_id}/triggers/{trigger_id}/pause", response_model=TriggerView)
async def pause_trigger(
    request: Request, namespace: str, flow_id: str, trigger_id: str, caller: Caller
) -> TriggerView:
    """Pause the trigger: it fires nothing until resumed (a no-op when already paused)."""
    operation = PauseTriggerRequest(namespace=namespace, flow_id=flow_id, trigger_id=trigger_id)
    return await call(request, caller, operation)


@router.post("/{namespace}/{flow_id}/triggers/{trigger_id}/resume", response_model=TriggerView)
async def resume_trigger(
    request: Request,
    namespace: str,
    flow_id: str,
    trigger_id: str,
    caller: Caller,
    catch_up: Annotated[
        Literal["QUEUE", "DROP"],
        Body(
            alias="catchUp",
            embed=True,
            description="QUEUE fires the ticks missed while paused; DROP skips them.",
        ),
    ] = "DROP",
) -> TriggerView:
    """Resume a paused trigger."""
    operation = ResumeTriggerRequest(
        namespace=namespace, flow_id=flow_id, trigger_id=trigger_id, catch_up=catch_up
    )
    return await call(request, caller, operation)
