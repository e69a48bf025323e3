"""Secrets (admin): set, list names, delete. No endpoint ever returns a value."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from pausepoint.api.deps import Caller, scoped
from pausepoint.api.schemas import SecretBody, SecretNames

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


@router.get("", response_model=SecretNames)
async def list_secrets(request: Request, caller: Caller) -> SecretNames:
    """The names of the organization's secrets (values are never returned)."""
    caller.require("admin", "managing secrets")
    return SecretNames(names=sorted(await scoped(request, caller).secret_names()))


@router.put("/{name}", status_code=204, response_class=Response)
async def put_secret(request: Request, name: str, body: SecretBody, caller: Caller) -> Response:
    """Create or replace a secret; flows read it as ``{{ secrets.NAME }}``."""
    caller.require("admin", "managing secrets")
    await scoped(request, caller).put_secret(name, body.value)
    return Response(status_code=204)


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_secret(request: Request, name: str, caller: Caller) -> Response:
    caller.require("admin", "managing secrets")
    await scoped(request, caller).delete_secret(name)
    return Response(status_code=204)
