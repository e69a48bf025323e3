"""Who the caller is: the web UI asks once after sign-in to know what to offer."""

from __future__ import annotations

from fastapi import APIRouter

from pausepoint.api.deps import Caller
from pausepoint.api.schemas import Identity

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.get("/me", response_model=Identity)
async def me(caller: Caller) -> Identity:
    """The organization, role, subject and groups of the credentials sent (401 without
    valid ones)."""
    return Identity(
        org=caller.org_id, role=caller.role, subject=caller.subject, groups=list(caller.groups)
    )
