"""The FastAPI application: error mapping, limits, request ids, routes."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pausepoint.errors import InvalidInput, PausepointError, Unauthorized
from pausepoint.service.engine import Engine


def error_body(error: PausepointError) -> dict[str, Any]:
    if isinstance(error, InvalidInput) and error.errors:
        return {"detail": [e.as_dict() for e in error.errors], "message": error.message}
    return {"detail": error.message, "code": error.code}


def create_app(engine: Engine) -> FastAPI:
    """The API for ``engine``; the engine's lifecycle belongs to the caller."""
    from pausepoint.api.routes import control, executions

    app = FastAPI(
        title="pausepoint",
        description="Pause, resume, cancel, terminate and steer running workflows and agents.",
        version="0.1.0",
    )
    app.state.engine = engine

    @app.exception_handler(PausepointError)
    async def _pausepoint_error(request: Request, error: PausepointError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
        return JSONResponse(error_body(error), status_code=error.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "value_error")),
            }
            for e in error.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)

    @app.middleware("http")
    async def _limits_and_ids(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = request.headers.get("x-request-id") or secrets.token_hex(8)
        length = request.headers.get("content-length")
        limit = engine.settings.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            return JSONResponse(
                {
                    "detail": f"request body too large: the limit is {limit} bytes",
                    "code": "body_too_large",
                },
                status_code=413,
            )
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    app.include_router(executions.router)
    app.include_router(control.router)
    return app
