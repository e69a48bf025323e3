"""Request plumbing shared by every route: the engine, the caller, idempotency."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from pausepoint.errors import FieldError, InvalidInput
from pausepoint.service.auth import Principal
from pausepoint.service.engine import Engine
from pausepoint.store.access import IdempotencyRecord


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def principal_of(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="An API key.")] = None,
    authorization: Annotated[str | None, Header(description="Bearer <API key or JWT>.")] = None,
) -> Principal:
    principal = await engine_of(request).authenticator.authenticate(
        api_key=x_api_key, authorization=authorization
    )
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
    """The stored reply for a repeated ``Idempotency-Key``, or None for a new request.

    The same key with a different body is a mistake the caller must hear about (422).
    """
    if key is None:
        return None
    record = await engine_of(request).store.get_idempotency(principal.org_id, key)
    if record is None:
        return None
    if record.body_hash != await body_hash(request) or record.path != request.url.path:
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
    return JSONResponse(
        record.response, status_code=record.status_code, headers={"Idempotent-Replayed": "true"}
    )


async def remember(
    request: Request, principal: Principal, key: str | None, status_code: int, body: Any
) -> None:
    """Store the first reply for ``key`` (a later request with the key replays it)."""
    if key is None:
        return
    engine = engine_of(request)
    await engine.store.put_idempotency(
        IdempotencyRecord(
            org_id=principal.org_id,
            key=key,
            method=request.method,
            path=request.url.path,
            body_hash=await body_hash(request),
            status_code=status_code,
            response=body,
            created_at=engine.clock(),
        )
    )


async def body_hash(request: Request) -> str:
    raw = await request.body()
    try:
        canonical = json.dumps(json.loads(raw or b"null"), sort_keys=True).encode()
    except ValueError:
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()
