"""The FastAPI application: error mapping, limits, request ids, routes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pausepoint.api.deps import release_claim
from pausepoint.errors import InvalidInput, PausepointError, Unauthorized
from pausepoint.service.engine import Engine


def error_body(error: PausepointError) -> dict[str, Any]:
    if isinstance(error, InvalidInput) and error.errors:
        return {"detail": [e.as_dict() for e in error.errors], "message": error.message}
    return {"detail": error.message, "code": error.code}


def create_app(engine: Engine) -> FastAPI:
    """The API for ``engine``; the engine's lifecycle belongs to the caller."""
    from pausepoint.api.metrics import ControlMetricsMiddleware, Metrics, time_checkpoints
    from pausepoint.api.middleware import RequestLimits
    from pausepoint.api.routes import bulk, compat, control, events, executions, flows, ops
    from pausepoint.api.routes import secrets as secret_routes
    from pausepoint.api.sse import event_hub

    app = FastAPI(
        title="pausepoint",
        description="Pause, resume, cancel, terminate and steer running workflows and agents.",
        version="0.1.0",
    )
    app.state.engine = engine

    @app.exception_handler(PausepointError)
    async def _pausepoint_error(request: Request, error: PausepointError) -> JSONResponse:
        await release_claim(request)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
        return JSONResponse(error_body(error), status_code=error.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        await release_claim(request)
        detail = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "value_error")),
            }
            for e in error.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)

    metrics = Metrics(checkpoint_seconds=time_checkpoints(engine))
    app.state.metrics = metrics
    event_hub(engine)  # the organization-wide event feed hooks the runtime once
    app.add_middleware(ControlMetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestLimits, max_body_bytes=engine.settings.max_body_bytes)

    app.include_router(ops.router)
    app.include_router(flows.router)
    # Before the control routes, so ``bulk`` is never read as an execution id.
    app.include_router(bulk.router)
    app.include_router(executions.router)
    app.include_router(control.router)
    app.include_router(events.router)
    app.include_router(compat.router)
    app.include_router(secret_routes.router)
    return app
