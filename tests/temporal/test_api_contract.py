"""The HTTP event tests of the embedded runtime, run unchanged against an API server on
Temporal (its events are written by a worker and relayed from the store).

Tests that inspect the embedded runtime's own bookkeeping (its sinks) are not imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pausepoint.config import Settings
from tests.api.conftest import RunningServer, running_server
from tests.api.matrix_support import HERE as MATRIX_TASKS
from tests.api.matrix_support import gated_server
from tests.api.test_control_matrix import OPS, REACH, check_cell
from tests.api.test_events import (
    test_json_pages_follow_after_and_limit,
    test_last_event_id_resumes_with_exactly_the_missed_events,
    test_sse_delivers_live_events_in_order_and_ends_after_the_terminal_one,
    test_sse_errors,
    test_the_organization_feed_carries_only_its_own_executions,
)
from tests.temporal.conftest import running_worker

__all__ = [
    "test_json_pages_follow_after_and_limit",
    "test_last_event_id_resumes_with_exactly_the_missed_events",
    "test_sse_delivers_live_events_in_order_and_ends_after_the_terminal_one",
    "test_sse_errors",
    "test_the_organization_feed_carries_only_its_own_executions",
]


@pytest.fixture
async def server(db_path: Path, settings: Settings) -> AsyncIterator[RunningServer]:
    """`pausepoint server --runtime temporal` in this process, with a worker beside it."""
    overrides = settings.model_dump(exclude={"db"})
    async with running_server(db_path, **overrides) as running, running_worker(settings):
        yield running


@pytest.mark.parametrize("state", list(REACH), ids=str.lower)
async def test_every_operation_in_each_state(db_path: Path, settings: Settings, state: str) -> None:
    """The (state x operation) matrix of tests/api/test_control_matrix.py, on Temporal."""
    settings = settings.model_copy(update={"python_paths": (str(MATRIX_TASKS),)})
    async with (
        gated_server(db_path, **settings.model_dump(exclude={"db"})) as server,
        running_worker(settings),
        server.client("acme", "operator") as http,
    ):

        async def cell(op: str) -> None:
            await check_cell(http, state, op, await REACH[state](http))

        await asyncio.gather(*(cell(op) for op in OPS))
