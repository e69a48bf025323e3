"""Secrets (admin): set, list names, delete. No endpoint ever returns a value."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from pausepoint.api.deps import Caller, call
from pausepoint.api.schemas import SecretBody, SecretNames
from pausepoint.service.operations import DeleteSecretRequest, ListSecretsRequest, PutSecretRequest

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


@router.get("", response_model=SecretNames)
async def list_secrets(request: Request, caller: Caller) -> SecretNames:
    """The names of the organization's secrets (values are never returned)."""
    names = await call(request, caller, ListSecretsRequest())
    return SecretNames(names=sorted(names))


@router.put("/{name}", status_code=204, response_class=Response)
async def put_secret(request: Request, name: str, body: SecretBody, caller: Caller) -> Response:
    """Create or replace a secret; flows read it as ``{{ secrets.NAME }}``."""
    await call(request, caller, PutSecretRequest(secret_name=name, value=body.value))
    return Response(status_code=204)


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_secret(request: Request, name: str, caller: Caller) -> Response:
    await call(request, caller, DeleteSecretRequest(secret_name=name))
    return Response(status_code=204)
