"""The example-flow tests of the embedded runtime, run unchanged on Temporal."""

from __future__ import annotations

from pathlib import Path

import pytest

from pausepoint.config import Settings
from tests.conftest import EXAMPLES
from tests.integration.test_examples import (
    test_human_in_the_loop_waits_for_a_resume_then_completes,
    test_parallel_approvals_need_a_pause_id_then_complete,
    test_pause_warn_ends_in_warning_when_nobody_resumes,
    test_pause_warn_resumed_in_time_completes,
    test_python_task_calls_the_example_function,
    test_python_task_failure_names_the_function,
    test_vacation_approval_as_make_run_starts_it_completes,
    test_vacation_approval_notifies_the_webhook_and_uses_the_resume_inputs,
    test_vacation_approval_runs_without_a_listener,
)
from tests.temporal.conftest import temporal_settings

__all__ = [
    "test_human_in_the_loop_waits_for_a_resume_then_completes",
    "test_parallel_approvals_need_a_pause_id_then_complete",
    "test_pause_warn_ends_in_warning_when_nobody_resumes",
    "test_pause_warn_resumed_in_time_completes",
    "test_python_task_calls_the_example_function",
    "test_python_task_failure_names_the_function",
    "test_vacation_approval_as_make_run_starts_it_completes",
    "test_vacation_approval_notifies_the_webhook_and_uses_the_resume_inputs",
    "test_vacation_approval_runs_without_a_listener",
]


@pytest.fixture
def settings(db_path: Path, temporal_address: str) -> Settings:
    return temporal_settings(db_path, temporal_address, python_paths=(str(EXAMPLES),))
