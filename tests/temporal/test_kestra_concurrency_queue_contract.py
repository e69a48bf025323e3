"""Kestra's concurrency queue bounds on temporal+postgres: the API server decides, workers run.

The embedded tests, run unchanged; their ``server`` is the control plane (on the
test's clock) with a worker. Left out: the two-servers test (it builds embedded
engines of its own) and Kestra's Sleep flows, whose timers are Temporal's and so
run on Temporal's clock, not the test's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pausepoint.config import Settings
from pausepoint.runtime.temporal import ExecutionWorker
from pausepoint.service.engine import Engine
from tests.integration.test_kestra_concurrency_queue import (
    Clock,
    clock,
    test_a_cancelled_queued_execution_makes_room_in_the_queue,
    test_a_new_execution_is_admitted_once_the_running_ones_slot_ran_out,
    test_a_queue_size_of_zero_lets_nothing_wait,
    test_a_slot_held_longer_than_duration_goes_to_the_next_queued_execution,
    test_an_execution_arriving_at_a_full_queue_is_cancelled_and_never_queued,
)

__all__ = [
    "clock",
    "test_a_cancelled_queued_execution_makes_room_in_the_queue",
    "test_a_new_execution_is_admitted_once_the_running_ones_slot_ran_out",
    "test_a_queue_size_of_zero_lets_nothing_wait",
    "test_a_slot_held_longer_than_duration_goes_to_the_next_queued_execution",
    "test_an_execution_arriving_at_a_full_queue_is_cancelled_and_never_queued",
]


@pytest.fixture
async def server(
    settings: Settings, worker: ExecutionWorker, clock: Clock
) -> AsyncIterator[Engine]:
    async with Engine(settings, serve=True, clock=clock) as running:
        yield running
