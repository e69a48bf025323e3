"""Maintenance (admin): purge the organization's ended executions on demand."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from pausepoint.api.deps import Caller, call
from pausepoint.service.retention import PurgeReport, PurgeRequest

router = APIRouter(prefix="/api/v1", tags=["maintenance"])


class PurgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Checked by the operation, after the caller's role: a viewer hears 403, not 422.
    older_than: str = Field(
        description="ISO-8601 duration: executions that ended longer ago than this (PT720H).",
        examples=["PT720H"],
    )
    dry_run: bool = Field(default=False, description="Count what would go; delete nothing.")
    namespace: str | None = Field(
        default=None, description="Only this namespace and those below it."
    )


@router.post("/purge", response_model=PurgeReport)
async def purge(request: Request, body: PurgeBody, caller: Caller) -> PurgeReport:
    """Delete the organization's ended executions older than ``older_than``, with their
    events, task runs, commands, files and idempotency records, in short batches.

    Executions with control commands are kept at least as long as the server's
    ``audit_retention``; running and paused executions are never touched, nor a parent
    whose child still runs.
    """
    operation = PurgeRequest(
        older_than=body.older_than, dry_run=body.dry_run, namespace=body.namespace
    )
    return await call(request, caller, operation)
