"""The FastAPI application: error mapping, limits, request ids, routes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from pausepoint.errors import InvalidInput, PausepointError, StoreUnavailable, Unauthorized
from pausepoint.service.engine import Engine

UI_DIRECTORY = Path(__file__).resolve().parent.parent / "ui"


def error_body(error: PausepointError) -> dict[str, Any]:
    if isinstance(error, InvalidInput) and error.errors:
        return {"detail": [e.as_dict() for e in error.errors], "message": error.message}
    return {"detail": error.message, "code": error.code}


class ErrorBody(BaseModel):
    """Every error but 422: what happened, in words, and a stable code."""

    detail: str
    code: str


RATE_LIMITED: dict[str, Any] = {
    "model": ErrorBody,
    "description": "Too many failed authentications from this client; see Retry-After.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No or bad credentials."},
    403: {"model": ErrorBody, "description": "The caller's role is too low."},
    404: {"model": ErrorBody, "description": "Unknown id (or another organization's)."},
    409: {"model": ErrorBody, "description": "Not legal now; the message names the state."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    429: RATE_LIMITED,
    431: {"model": ErrorBody, "description": "Request headers too large."},
    503: {
        "model": ErrorBody,
        "description": "The database cannot be reached or written just now (nothing was "
        "written); send the request again after Retry-After seconds.",
    },
}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema.get("paths", {}).items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    ]


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI links from what creates a resource to what reads and controls it.

    A started execution's ``id`` is the ``execution_id`` (or Shannon's
    ``task_id``) of every route about one execution; a stored (or listed)
    flow's ``namespace`` and ``id`` name it and start executions of it. Clients
    and stateful testers (schemathesis) follow them instead of guessing ids.
    """
    operations = _operations(schema)

    def links_to(parameter: str) -> dict[str, Any]:
        return {
            operation["operationId"]: {
                "operationId": operation["operationId"],
                "parameters": {f"path.{parameter}": "$response.body#/id"},
            }
            for path, _, operation in operations
            if "{" + parameter + "}" in path
        }

    paths = schema.get("paths", {})
    started = paths.get("/api/v1/executions", {}).get("post", {}).get("responses", {}).get("201")
    if started is not None:
        started["links"] = {**links_to("execution_id"), **links_to("task_id")}
    stored = paths.get("/api/v1/flows/{namespace}/{flow_id}", {}).get("put", {})
    flow_links = {
        operation["operationId"]: {
            "operationId": operation["operationId"],
            "parameters": {
                "path.namespace": "$response.body#/namespace",
                "path.flow_id": "$response.body#/id",
            },
        }
        for path, method, operation in operations
        if path == "/api/v1/flows/{namespace}/{flow_id}" and method != "put"
    }
    start = paths.get("/api/v1/executions", {}).get("post")
    if start is not None:
        flow_links[start["operationId"]] = {
            "operationId": start["operationId"],
            "requestBody": {
                "namespace": "$response.body#/namespace",
                "flow_id": "$response.body#/id",
            },
        }
        listed = paths.get("/api/v1/flows", {}).get("get", {}).get("responses", {}).get("200")
        if listed is not None:
            listed["links"] = {
                "StartTheFirstListedFlow": {
                    "operationId": start["operationId"],
                    "requestBody": {
                        "namespace": "$response.body#/0/namespace",
                        "flow_id": "$response.body#/0/id",
                    },
                }
            }
    for status in ("200", "201"):
        response = stored.get("responses", {}).get(status)
        if response is not None:
            response["links"] = flow_links
    return schema


def create_app(engine: Engine) -> FastAPI:
    """The API for ``engine``; the engine's lifecycle belongs to the caller."""
    from pausepoint.api.deps import authenticated, document_credentials, principal_of
    from pausepoint.api.metrics import ControlMetricsMiddleware, Metrics, time_checkpoints
    from pausepoint.api.middleware import RequestLimits
    from pausepoint.api.routes import approvals as approval_routes
    from pausepoint.api.routes import (
        bulk,
        control,
        decide,
        events,
        executions,
        flows,
        kestra,
        kubiya,
        maintenance,
        me,
        ops,
        shannon,
        syntropic,
    )
    from pausepoint.api.routes import callbacks as callback_routes
    from pausepoint.api.routes import files as file_routes
    from pausepoint.api.routes import secrets as secret_routes
    from pausepoint.api.routes import triggers as trigger_routes
    from pausepoint.api.routes.dialect import caller_or_error

    app = FastAPI(
        title="pausepoint",
        description="Pause, resume, cancel, terminate and steer running workflows and agents.",
        version="0.1.0",
        # A path with a trailing "/" is answered by `_trailing_slash` below, not redirected
        # whatever its method (a redirected POST lands on a GET route as a 405).
        redirect_slashes=False,
    )
    app.state.engine = engine

    @app.exception_handler(PausepointError)
    async def _pausepoint_error(request: Request, error: PausepointError) -> JSONResponse:
        headers: dict[str, str] | None = None
        if isinstance(error, Unauthorized):
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(error, StoreUnavailable):
            headers = {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
        return JSONResponse(error_body(error), status_code=error.http_status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:
            # A body that does not parse is invalid input like any other: 422, naming it.
            detail = [{"loc": ["body"], "msg": str(error.detail), "type": "body_parse_error"}]
            return JSONResponse({"detail": detail}, status_code=422)
        body: dict[str, Any] = {"detail": str(error.detail), "code": f"http_{error.status_code}"}
        if error.status_code == 404:
            # No route matched (an id with an encoded "/" in it, say): the path may be one of
            # Kestra's, whose clients read "message", so the reply carries both shapes.
            body["message"] = str(error.detail)
            body["_links"] = {"self": {"href": request.url.path, "templated": False}}
        return JSONResponse(
            body, status_code=error.status_code, headers=getattr(error, "headers", None)
        )

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

    metrics = Metrics(checkpoint_seconds=time_checkpoints(engine))
    app.state.metrics = metrics
    app.add_middleware(ControlMetricsMiddleware, metrics=metrics)

    app.add_middleware(RequestLimits, max_body_bytes=engine.settings.max_body_bytes)

    # A request is matched against the routes in this order, one after another (a few
    # microseconds each): the busiest come first. Only routers with paths in common need
    # an order, and the comments say which.
    routers: list[tuple[APIRouter, dict[int | str, dict[str, Any]] | None]] = [
        (executions.router, ERROR_RESPONSES),
        # Before the control routes, so ``bulk`` and ``batch`` are never read as execution ids.
        (bulk.router, ERROR_RESPONSES),
        (kubiya.batch, ERROR_RESPONSES),
        # Kestra's untenanted resume takes form bodies only: JSON still reaches the native route.
        (kestra.legacy, None),
        (control.router, ERROR_RESPONSES),
        (events.router, ERROR_RESPONSES),
        (ops.router, None),
        (flows.router, ERROR_RESPONSES),
        (trigger_routes.router, ERROR_RESPONSES),
        (file_routes.router, ERROR_RESPONSES),
        (maintenance.router, ERROR_RESPONSES),
        *((dialect.router, ERROR_RESPONSES) for dialect in (shannon, kubiya, syntropic)),
        # Last: its paths start with a tenant, which must never shadow a native path.
        (kestra.router, None),
        (secret_routes.router, ERROR_RESPONSES),
        (me.router, ERROR_RESPONSES),
        (approval_routes.router, ERROR_RESPONSES),
        (decide.api, ERROR_RESPONSES),
        (decide.pages, None),
        (callback_routes.api, ERROR_RESPONSES),
        (callback_routes.public, ERROR_RESPONSES),
    ]
    for router, responses in routers:
        app.include_router(router, responses=responses)
    # The API description keeps the order its readers know, whatever the matching order.
    documented = (
        ops.router,
        flows.router,
        trigger_routes.router,
        bulk.router,
        kubiya.batch,
        executions.router,
        file_routes.router,
        kestra.legacy,
        control.router,
        events.router,
    )
    listed = {
        route.path: n
        for n, router in reversed(list(enumerate(documented)))
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
    }

    def in_documented_order(schema: dict[str, Any]) -> dict[str, Any]:
        paths = schema.get("paths", {})
        schema["paths"] = dict(
            sorted(paths.items(), key=lambda item: listed.get(item[0], len(documented)))
        )
        return schema

    generate_openapi = app.openapi

    def openapi_with_links() -> dict[str, Any]:
        if app.openapi_schema is None:
            # The routes that authenticate read their credential headers themselves.
            credentials = (principal_of, caller_or_error)
            operations = {
                (route.path, method.lower())
                for router, _ in routers
                for route in router.routes
                if isinstance(route, APIRoute)
                and route.include_in_schema
                and authenticated(route.dependant, credentials)
                for method in route.methods or ()
            }
            app.openapi_schema = add_links(
                in_documented_order(document_credentials(generate_openapi(), operations))
            )
        return app.openapi_schema

    app.openapi = openapi_with_links  # type: ignore[method-assign]
    # The web UI: its page at "/", its files under "/ui" (a mount at "/" would answer
    # every unmatched path, turning an API route's 405 into a 404).
    app.mount("/ui", StaticFiles(directory=UI_DIRECTORY), name="ui")

    @app.get("/", include_in_schema=False)
    async def _web_ui() -> FileResponse:
        return FileResponse(UI_DIRECTORY / "index.html")

    # Last, so that it only takes what no route took. Every method, or a route matching
    # another method would turn the request into a 405.
    @app.api_route(
        "/{rest:path}/",
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def _trailing_slash(request: Request, rest: str) -> RedirectResponse:
        """A GET with a trailing "/" is sent to the path without it; any other method is a
        404 saying so (a body is never sent on to another route)."""
        if request.method in ("GET", "HEAD") and rest:
            raw = request.scope.get("raw_path") or request.url.path.encode()
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"{raw.decode('latin-1').rstrip('/')}{query}", status_code=307)
        raise StarletteHTTPException(
            404, f"no route for {request.method} {request.url.path} (paths end without '/')"
        )

    return app
