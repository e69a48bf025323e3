"""Callback tokens: a machine completes a Pause task's wait with one call (no API key)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pausepoint.api.deps import Caller, body_duration, call
from pausepoint.errors import FieldError, InvalidInput
from pausepoint.service.callbacks import MintedCallback
from pausepoint.service.engine import Engine
from pausepoint.service.operations import MintCallbackRequest

api = APIRouter(prefix="/api/v1/executions", tags=["callbacks"])
public = APIRouter(prefix="/api/v1/callbacks", tags=["callbacks"])


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=200, description="The Pause task it completes.")
    expires_in: str | None = Field(default=None, description="ISO-8601 duration.")


@api.post("/{execution_id}/callbacks", response_model=MintedCallback)
async def mint_callback(
    request: Request, execution_id: str, caller: Caller, body: CallbackBody
) -> MintedCallback:
    """A callback token completing the Pause task ``task_id`` of this execution."""
    expires_in = body_duration(body.expires_in, "expires_in")
    operation = MintCallbackRequest(
        execution_id=execution_id, task_id=body.task_id, expires_in=expires_in
    )
    return await call(request, caller, operation)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def _inputs(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise InvalidInput(
            f"the body is not JSON: {error}", [FieldError(("body",), "not JSON", "json_invalid")]
        ) from None
    if not isinstance(body, dict):
        raise InvalidInput(
            "the body is a JSON object of the task's onResume inputs",
            [FieldError(("body",), "a JSON object", "dict_type")],
        )
    return body


@public.post("/{token}")
async def complete(request: Request, token: str) -> JSONResponse:
    """Complete the wait the token names with the JSON body as its inputs. Idempotent: a
    second completion returns the first one's result (``replayed``)."""
    outcome = await _engine(request).complete_callback(token, await _inputs(request))
    return JSONResponse(asdict(outcome))


@public.post("/{token}/heartbeat", status_code=202)
async def heartbeat(request: Request, token: str) -> JSONResponse:
    """The task is still being worked on: its heartbeatTimeout starts again."""
    await _engine(request).callback_heartbeat(token)
    return JSONResponse({"ok": True}, status_code=202)
