"""Flow concurrency limits on temporal+postgres: the API server gives the slots, workers run.

The embedded tests, run unchanged; their ``server`` is the control plane with a worker.
"""

from __future__ import annotations

import pytest

from pausepoint.service.engine import Engine
from tests.integration.test_flow_concurrency import (
    test_a_queued_execution_can_be_cancelled_and_gives_its_place_up,
    test_cancel_and_fail_end_an_execution_over_the_limit_at_once,
    test_queue_holds_new_executions_and_starts_them_oldest_first,
)

__all__ = [
    "test_a_queued_execution_can_be_cancelled_and_gives_its_place_up",
    "test_cancel_and_fail_end_an_execution_over_the_limit_at_once",
    "test_queue_holds_new_executions_and_starts_them_oldest_first",
]


@pytest.fixture
def server(engine: Engine) -> Engine:
    return engine
