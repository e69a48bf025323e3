"""Triggers on temporal+postgres: the server's scheduler starts workflows through the engine.

The embedded tests that take the ``engine`` fixture, run unchanged; here the engine is
the control plane (with a worker), so what a trigger fires runs as a Temporal workflow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pausepoint.config import Settings
from pausepoint.runtime.temporal import ExecutionWorker
from pausepoint.service.engine import Engine
from tests.integration.test_triggers import (
    Clock,
    test_a_flow_trigger_starts_when_a_matching_execution_ends,
    test_a_schedule_fires_once_per_tick_with_the_tick_as_trigger_date,
    test_a_webhook_starts_only_with_its_key,
)
from tests.temporal.conftest import running_worker

__all__ = [
    "test_a_flow_trigger_starts_when_a_matching_execution_ends",
    "test_a_schedule_fires_once_per_tick_with_the_tick_as_trigger_date",
    "test_a_webhook_starts_only_with_its_key",
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The server's own loop waits an hour between passes: the test fires them."""
    return {"trigger_interval": 3600.0}


@pytest.fixture
def clock() -> Clock:
    return Clock("2026-01-01T00:00:30")


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[ExecutionWorker]:
    async with running_worker(settings) as running:
        yield running


@pytest.fixture
async def engine(
    settings: Settings, clock: Clock, worker: ExecutionWorker
) -> AsyncIterator[Engine]:
    """The control plane on the test's clock (the worker keeps the real one)."""
    async with Engine(settings, serve=True, clock=clock) as running:
        yield running
