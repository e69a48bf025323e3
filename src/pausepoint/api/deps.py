"""Request plumbing shared by every route: the caller, and the call into the control plane."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request

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


async def principal_of(
    request: Request,
    x_api_key: ApiKeyHeader = None,
    authorization: AuthorizationHeader = None,
) -> Principal:
    """The authenticated caller; 401 for bad credentials, 429 for a client over the limit.

    The limit is checked before any credential is looked at (see ``api.ratelimit``).
    """
    limiter, proxies = auth_failures_of(request)
    peer = request.client.host if request.client else None
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    client = client_key(peer, forwarded, proxies)
    limiter.check(client)
    try:
        principal = await engine_of(request).authenticator.authenticate(
            api_key=x_api_key, authorization=authorization
        )
    except Unauthorized:
        limiter.record_failure(client)
        raise
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(principal_of)]


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


def body_duration(value: str | None, field: str) -> float | None:
    """Seconds of an ISO-8601 duration given in a body's ``field``; 422 naming it if bad."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise InvalidInput(f"{field}: {error}", [FieldError(("body", field), str(error))]) from None
