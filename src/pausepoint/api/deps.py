"""Request plumbing shared by every route: the engine, the caller, idempotency."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from pausepoint.api.ratelimit import AuthFailureLimiter, Network, client_key, parse_networks
from pausepoint.errors import Conflict, FieldError, InvalidInput, Unauthorized
from pausepoint.service.auth import Principal
from pausepoint.service.engine import Engine
from pausepoint.store.access import IdempotencyRecord


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


async def principal_of(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="An API key.")] = None,
    authorization: Annotated[str | None, Header(description="Bearer <API key or JWT>.")] = None,
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


def scoped(request: Request, principal: Principal) -> Engine:
    """The engine acting for the caller's organization."""
    return engine_of(request).as_org(principal.org_id)


def request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Repeat a request safely: the same key and body return the first reply.",
    ),
]


async def replay(request: Request, principal: Principal, key: str | None) -> JSONResponse | None:
    """The first reply for a repeated ``Idempotency-Key``, or None when this request goes ahead.

    Going ahead reserves the key (atomically), so concurrent twins wait for this
    request's reply instead of doing the work again. The same key with a different
    body or path is a mistake the caller must hear about (422).
    """
    if key is None:
        return None
    engine = engine_of(request)
    digest = await body_hash(request)
    placeholder = IdempotencyRecord(
        principal.org_id, key, request.method, request.url.path, digest, 0, None, engine.clock()
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + engine.settings.command_wait_timeout + 5
    while True:
        record = await engine.store.claim_idempotency(placeholder)
        if record is None:
            request.state.idempotency_claim = (principal.org_id, key)
            return None
        if record.body_hash != digest or record.path != request.url.path:
            raise InvalidInput(
                "Idempotency-Key was already used for a different request",
                [
                    FieldError(
                        ("header", "Idempotency-Key"),
                        "already used with another body or path; use a new key",
                        "idempotency_conflict",
                    )
                ],
            )
        if record.status_code:
            return JSONResponse(
                record.response,
                status_code=record.status_code,
                headers={"Idempotent-Replayed": "true"},
            )
        if loop.time() > deadline:
            raise Conflict("a request with this Idempotency-Key is still in progress; retry")
        await asyncio.sleep(engine.settings.poll_interval / 4)


async def remember(
    request: Request, principal: Principal, key: str | None, status_code: int, body: Any
) -> None:
    """Store the first reply for ``key``: later requests with the key get it again."""
    if key is None:
        return
    await engine_of(request).store.complete_idempotency(principal.org_id, key, status_code, body)
    request.state.idempotency_claim = None


async def release_claim(request: Request) -> None:
    """After a failed request, free its reserved key so that a retry can proceed."""
    claim = getattr(request.state, "idempotency_claim", None)
    if claim is not None:
        request.state.idempotency_claim = None
        await engine_of(request).store.release_idempotency(*claim)


async def body_hash(request: Request) -> str:
    raw = await request.body()
    try:
        canonical = json.dumps(json.loads(raw or b"null"), sort_keys=True).encode()
    except (ValueError, RecursionError):  # not JSON, or too deep to canonicalise
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()
