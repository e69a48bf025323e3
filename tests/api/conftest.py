"""A real pausepoint server on a free loopback port (uvicorn), with keys for two orgs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from pausepoint.api import create_app
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings

APPROVAL_FLOW = """
id: approval
namespace: api.tests
inputs:
  - id: amount
    type: INT
    defaults: 10
tasks:
  - id: prepare
    type: return
    format: "amount {{ inputs.amount }}"
  - id: wait
    type: pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: note
        type: STRING
        defaults: none
  - id: done
    type: return
    format: "approved={{ outputs.wait.onResume.approved }}"
"""


@dataclass
class RunningServer:
    base_url: str
    engine: Engine
    keys: dict[str, str] = field(default_factory=dict)  # "<org>:<role>" -> key

    def headers(self, org: str = "acme", role: str = "admin") -> dict[str, str]:
        return {"X-API-Key": self.keys[f"{org}:{role}"]}

    def client(self, org: str = "acme", role: str = "admin") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers(org, role), timeout=30
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """``app`` served by uvicorn on a free loopback port: its base URL and the server.

    As ``pausepoint server`` does, forwarded headers are not trusted (the
    auth-failure limiter decides who the client is).
    """
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
        )
    )
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            task.result()  # raises why it could not start
        return server.started

    try:
        await assert_eventually(started, interval=0.01, what=f"uvicorn on port {port}")
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_server(db_path: Path, **overrides: object) -> AsyncIterator[RunningServer]:
    settings = fast_settings(db_path, **overrides)
    engine = Engine(settings, serve=True)
    await engine.start()
    try:
        async with serving(create_app(engine)) as (base_url, _):
            running = RunningServer(base_url, engine)
            for org in ("acme", "globex"):
                scoped = engine.as_org(org)
                for role in ("viewer", "operator", "admin"):
                    key, _ = await scoped.create_api_key(role, f"{org} {role}")
                    running.keys[f"{org}:{role}"] = key
                await scoped.put_flow(APPROVAL_FLOW)
            yield running
    finally:
        await engine.stop()


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_path) as running:
        yield running
