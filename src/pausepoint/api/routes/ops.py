"""Operations endpoints (no credentials): liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from pausepoint.api.deps import engine_of
from pausepoint.api.metrics import Metrics
from pausepoint.api.schemas import Health

router = APIRouter(tags=["ops"])

READY_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive and serving HTTP."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request) -> JSONResponse:
    """The store answers a cheap query; 503 while it does not."""
    try:
        await asyncio.wait_for(engine_of(request).ready(), READY_TIMEOUT_SECONDS)
    except Exception as error:  # any failure to reach the store means "not ready"
        # Load balancers and clients back off as they would for any other 503.
        return JSONResponse(
            {"status": f"unavailable: {type(error).__name__}: {error}"},
            status_code=503,
            headers={"Retry-After": "2"},
        )
    return JSONResponse(Health(status="ok").model_dump())


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format: executions by state, control requests, checkpoint latency."""
    registry: Metrics = request.app.state.metrics
    return PlainTextResponse(
        await registry.render(engine_of(request)),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
