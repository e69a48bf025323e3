"""Kestra's core tasks on temporal+postgres: the engine-level tests, run unchanged.

The Resume task runs in a worker's activity and sends its command through that
worker's control plane; Labels reach the searchable column from the checkpoint
activity.
"""

from __future__ import annotations

from tests.integration.test_kestra_tasks import (
    test_a_disabled_flow_starts_nothing,
    test_labels_task_labels_are_searchable,
    test_resume_task_fails_clearly_for_a_running_or_unknown_execution,
    test_resume_task_resumes_another_execution_through_the_control_plane,
)

__all__ = [
    "test_a_disabled_flow_starts_nothing",
    "test_labels_task_labels_are_searchable",
    "test_resume_task_fails_clearly_for_a_running_or_unknown_execution",
    "test_resume_task_resumes_another_execution_through_the_control_plane",
]
