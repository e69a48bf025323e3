"""Shared fixtures: a real SQLite file per test, settings shrunk for speed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pausepoint.config import Settings
from pausepoint.service.engine import Engine

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLES = REPO / "examples"


def fast_settings(db_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db": f"sqlite:///{db_path}",
        "poll_interval": 0.05,
        "lease_ttl": 2.0,
        "lease_renew_interval": 0.5,
        "cancel_grace_period": 0.5,
        "command_wait_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pausepoint.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return fast_settings(db_path)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(settings) as running:
        yield running


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``check`` until it is true; fail with a clear message after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
