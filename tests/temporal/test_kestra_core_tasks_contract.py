"""Kestra's core test flows, with Kestra's stated outcomes, run unchanged on Temporal."""

from __future__ import annotations

from pathlib import Path

import pytest

from pausepoint.config import Settings
from tests.integration.test_kestra_core_tasks import (
    test_dag_runs_every_task_and_succeeds,
    test_exit_ends_the_execution_in_warning,
    test_exit_killed_kills_the_execution_and_its_runs,
    test_fail_on_condition_fails_when_the_condition_holds,
    test_fail_on_condition_passes_when_the_condition_is_false,
    test_fail_on_switch_fails_the_switch_without_a_matching_case,
    test_labels_task_keeps_the_last_value_of_a_repeated_key,
    test_waitfor_fails_when_max_duration_is_reached,
    test_waitfor_fails_when_max_iterations_is_reached,
    test_waitfor_loops_until_the_condition_is_false,
    test_waitfor_with_several_tasks_ends_on_the_fourth_count,
    test_waitfor_without_failing_on_max_succeeds,
)
from tests.temporal.conftest import temporal_settings

__all__ = [
    "test_dag_runs_every_task_and_succeeds",
    "test_exit_ends_the_execution_in_warning",
    "test_exit_killed_kills_the_execution_and_its_runs",
    "test_fail_on_condition_fails_when_the_condition_holds",
    "test_fail_on_condition_passes_when_the_condition_is_false",
    "test_fail_on_switch_fails_the_switch_without_a_matching_case",
    "test_labels_task_keeps_the_last_value_of_a_repeated_key",
    "test_waitfor_fails_when_max_duration_is_reached",
    "test_waitfor_fails_when_max_iterations_is_reached",
    "test_waitfor_loops_until_the_condition_is_false",
    "test_waitfor_with_several_tasks_ends_on_the_fourth_count",
    "test_waitfor_without_failing_on_max_succeeds",
]


@pytest.fixture
def settings(db_path: Path, temporal_address: str) -> Settings:
    return temporal_settings(db_path, temporal_address)
