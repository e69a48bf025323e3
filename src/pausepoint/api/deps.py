"""Request plumbing shared by every route: the caller, and the call into the control plane."""

from __future__ import annotations

import copy
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pausepoint.api.ratelimit import AuthFailureLimiter, Network, client_key, parse_networks
from pausepoint.errors import FieldError, InvalidInput, Unauthorized
from pausepoint.flow.durations import parse_duration
from pausepoint.service.auth import Principal
from pausepoint.service.engine import Engine
from pausepoint.service.operations import Operation
from pausepoint.tracecontext import TraceContext

R = TypeVar("R")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def auth_failures_of(request: Request) -> tuple[AuthFailureLimiter, tuple[Network, ...]]:
    """The app's limiter of failed authentications and its trusted proxies (made on first use)."""
    state = request.app.state
    made: tuple[AuthFailureLimiter, tuple[Network, ...]] | None = getattr(
        state, "auth_failures", None
    )
    if made is None:
        settings = engine_of(request).settings
        limiter = AuthFailureLimiter(
            limit=settings.auth_failure_limit,
            window=settings.auth_failure_window,
            max_clients=settings.auth_failure_clients,
        )
        made = (limiter, parse_networks(settings.trusted_proxies))
        state.auth_failures = made
    return made


ApiKeyHeader = Annotated[str | None, Header(description="An API key.")]
AuthorizationHeader = Annotated[
    str | None,
    Header(description="Bearer <API key or JWT>, UserKey <API key>, or Basic with the key."),
]


def _client_of(request: Request, proxies: tuple[Network, ...]) -> str:
    peer = request.client.host if request.client else None
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    return client_key(peer, forwarded, proxies)


async def principal_of(request: Request) -> Principal:
    """The authenticated caller (``X-API-Key`` or ``Authorization``); 401 for bad
    credentials, 429 for a client over the limit.

    The limit is checked before any credential is looked at (see ``api.ratelimit``).
    The two headers are read here rather than declared as parameters, which FastAPI
    would look up, parse and validate one by one on every request:
    :func:`document_credentials` puts them in the OpenAPI schema as before.
    """
    limiter, proxies = auth_failures_of(request)
    # Only a client that failed lately can be over the limit: nobody else is looked up.
    client = _client_of(request, proxies) if len(limiter) else None
    if client is not None:
        limiter.check(client)
    headers = request.headers
    try:
        principal = await engine_of(request).authenticator.authenticate(
            api_key=headers.get("x-api-key"), authorization=headers.get("authorization")
        )
    except Unauthorized:
        limiter.record_failure(client or _client_of(request, proxies))
        raise
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(principal_of)]


async def _credentials(
    x_api_key: ApiKeyHeader = None, authorization: AuthorizationHeader = None
) -> None:
    """Never called: the credential headers as FastAPI documents them (see below)."""


def document_credentials(
    schema: dict[str, Any], operations: set[tuple[str, str]]
) -> dict[str, Any]:
    """Add the credential headers to ``operations`` (path, lower-case method) of ``schema``,
    last, as FastAPI would had ``principal_of`` declared them as parameters (with the
    422 reply FastAPI gives every operation that has parameters)."""
    probe = FastAPI()
    probe.get("/")(_credentials)
    documented = probe.openapi()["paths"]["/"]["get"]
    for path, method in operations:
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        parameters = copy.deepcopy(documented["parameters"])
        if "parameters" in operation:
            operation["parameters"].extend(parameters)
        else:  # where FastAPI puts them: after the operation's id
            fields = list(operation.items())
            at = next((n + 1 for n, (key, _) in enumerate(fields) if key == "operationId"), 0)
            fields.insert(at, ("parameters", parameters))
            operation.clear()
            operation.update(fields)
        responses = operation.setdefault("responses", {})
        if "422" not in responses:
            responses["422"] = copy.deepcopy(documented["responses"]["422"])
    return schema


def authenticated(dependant: Any, credentials: tuple[Any, ...]) -> bool:
    """Whether a route's dependency tree (``APIRoute.dependant``) calls one of
    ``credentials``."""
    return any(
        sub.call in credentials or authenticated(sub, credentials) for sub in dependant.dependencies
    )


def request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def trace_context(request: Request) -> TraceContext | None:
    """The caller's W3C trace context (the middleware read it), if it sent a valid one."""
    value = getattr(request.state, "trace_context", None)
    return value if isinstance(value, TraceContext) else None


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Repeat a request safely: the same key and body return the first reply.",
    ),
]


async def call(
    request: Request,
    caller: Principal,
    operation: Operation[R],
    idempotency_key: str | None = None,
) -> R:
    """Run ``operation`` through the control plane's chain for ``caller``; its result."""
    return (await call_replayed(request, caller, operation, idempotency_key))[0]


async def call_replayed(
    request: Request,
    caller: Principal,
    operation: Operation[R],
    idempotency_key: str | None = None,
) -> tuple[R, dict[str, str]]:
    """Like ``call``, with the headers that say an Idempotency-Key replayed a result."""
    reply = await engine_of(request).call(
        operation,
        caller,
        idempotency_key=idempotency_key,
        request_id=request_id(request),
        trace_context=trace_context(request),
    )
    return reply.value, ({"Idempotent-Replayed": "true"} if reply.replayed else {})


class ModelReply(JSONResponse):
    """A pydantic model as JSON, the body FastAPI would render for it, serialized once by
    pydantic (a route returning the model makes FastAPI validate it again, then dump it)."""

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return content.model_dump_json().encode()
        return super().render(content)


def json_reply(
    model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """``model`` as a JSON reply (see :class:`ModelReply`)."""
    return ModelReply(model, status_code=status_code, headers=headers)


def body_duration(value: str | None, field: str) -> float | None:
    """Seconds of an ISO-8601 duration given in a body's ``field``; 422 naming it if bad."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise InvalidInput(f"{field}: {error}", [FieldError(("body", field), str(error))]) from None
