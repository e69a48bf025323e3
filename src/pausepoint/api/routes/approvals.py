"""The approvals inbox: open approval requests across executions (votes go to /review)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from pausepoint.api.deps import Caller, call
from pausepoint.api.routes.executions import parse_labels
from pausepoint.models import ApprovalPage
from pausepoint.service.operations import ApprovalsRequest

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"])


@router.get("", response_model=ApprovalPage)
async def list_approvals(
    request: Request,
    caller: Caller,
    state: Literal["open"] = "open",
    assigned: Annotated[
        Literal["me", "anyone"], Query(description="me: only what you may still decide.")
    ] = "anyone",
    namespace: str | None = None,
    flow_id: str | None = None,
    label: Annotated[list[str], Query(description="key:value, all must match.")] = [],  # noqa: B006
    older_than: Annotated[
        str | None, Query(description="Open at least this long (ISO-8601 duration, PT1H).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ApprovalPage:
    """Open approval requests, oldest first, each with what the caller may do about it."""
    operation = ApprovalsRequest(
        user=caller.subject,
        groups=caller.groups,
        role=caller.role,
        assigned_to_me=assigned == "me",
        namespace=namespace,
        flow_id=flow_id,
        labels=parse_labels(label),
        older_than=older_than,
        limit=limit,
    )
    return await call(request, caller, operation)
