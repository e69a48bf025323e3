"""What the seed systems' routes share: a caller whose authentication failure the route
renders in its own system's error shape, and control commands answered in that shape.

Malformed bodies stay FastAPI's 422 ``{"detail": [{loc, msg, type}]}``, as the seeds document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from pausepoint.api.deps import principal_of
from pausepoint.api.routes.control import send
from pausepoint.errors import InvalidInput, PausepointError
from pausepoint.models import ControlResult
from pausepoint.service.auth import Principal
from pausepoint.service.requests import ControlRequest


async def caller_or_error(request: Request) -> Principal | PausepointError:
    """The caller, or the authentication error for the route to render in its seed's shape."""
    try:
        return await principal_of(request)
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
    status_code: int = 202,
) -> JSONResponse:
    if isinstance(caller, PausepointError):
        return error(caller)
    try:
        return await send(
            request, caller, idempotency_key, command, status_code=status_code, shape=shape
        )
    except InvalidInput as invalid:
        if invalid.errors:
            raise  # FastAPI's 422 shape, which every seed documents
        return error(invalid)
    except PausepointError as failure:
        return error(failure)
