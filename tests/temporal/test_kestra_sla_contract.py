"""Kestra's flow-level ``sla`` on temporal+postgres: the embedded tests, run unchanged.

The MAX_DURATION deadline is a Temporal workflow timer here; ``server`` is the
control plane (which gives concurrency slots away) with a worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pausepoint.config import Settings
from pausepoint.service.engine import Engine
from tests.integration.test_kestra_sla import (
    test_a_bad_sla_is_refused_naming_the_field,
    test_a_max_duration_sla_fails_the_execution,
    test_a_max_duration_sla_not_reached_lets_the_execution_succeed,
    test_a_subflow_failed_by_its_sla_frees_its_parents_slot,
    test_an_assertion_sla_cancel_gives_the_concurrency_slot_back,
    test_an_assertion_sla_that_holds_lets_the_execution_succeed,
    test_an_assertion_sla_with_cancel_cancels_the_execution,
    test_an_assertion_sla_with_none_only_labels_the_execution,
    test_an_assertion_that_cannot_render_counts_as_violated,
    test_an_sla_cancel_kills_the_parent_and_cancels_the_subflow_it_waits_for,
    test_an_sla_violated_in_a_subflow_fails_its_parent,
    violations,
)
from tests.temporal.conftest import running_worker

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
TIMEOUT = 30.0

__all__ = [
    "test_a_bad_sla_is_refused_naming_the_field",
    "test_a_max_duration_sla_fails_the_execution",
    "test_a_max_duration_sla_not_reached_lets_the_execution_succeed",
    "test_a_subflow_failed_by_its_sla_frees_its_parents_slot",
    "test_an_assertion_sla_cancel_gives_the_concurrency_slot_back",
    "test_an_assertion_sla_that_holds_lets_the_execution_succeed",
    "test_an_assertion_sla_with_cancel_cancels_the_execution",
    "test_an_assertion_sla_with_none_only_labels_the_execution",
    "test_an_assertion_that_cannot_render_counts_as_violated",
    "test_an_sla_cancel_kills_the_parent_and_cancels_the_subflow_it_waits_for",
    "test_an_sla_violated_in_a_subflow_fails_its_parent",
]


@pytest.fixture
def server(engine: Engine) -> Engine:
    return engine


async def test_a_max_duration_deadline_is_a_workflow_timer_kept_without_a_worker(
    control_plane: Engine, settings: Settings
) -> None:
    """The deadline lives in Temporal: the worker that armed it goes away, a new one
    fails the execution when it falls due (sla-subflow.yaml: PT1S, sleeping PT10S)."""
    record = await control_plane.put_flow_file(VALIDS / "sla-subflow.yaml")
    async with running_worker(settings):
        execution = await control_plane.start_execution(record.namespace, record.flow_id)
        await control_plane.wait(
            execution.id, until=lambda v: v.state == "RUNNING", timeout=TIMEOUT
        )
    async with running_worker(settings):
        view = await control_plane.wait(execution.id, timeout=TIMEOUT)
    assert view.state == "FAILED"
    (violation,) = await violations(control_plane, execution.id)
    assert violation["sla_id"] == "maxDuration"
