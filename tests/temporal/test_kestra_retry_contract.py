"""Kestra's retry behaviors, to the outcomes Kestra's tests state, on temporal+postgres."""

from __future__ import annotations

from tests.integration.test_kestra_retry import (
    test_a_flow_retry_failed_reruns_the_failed_task,
    test_a_new_execution_retry_ends_after_its_attempts,
    test_a_new_execution_retry_ends_after_its_duration,
    test_a_subflow_retried_by_a_new_execution_answers_its_parent,
    test_retry_flowable_allows_the_failure_only_after_the_last_attempt,
    test_retry_flowable_keeps_the_leaf_retry_inside_each_round,
    test_retry_flowable_on_a_foreach_runs_every_iteration_again,
    test_retry_flowable_runs_the_flowable_again_as_a_whole,
    test_the_retry_stage_run_again_starts_no_second_execution,
)

__all__ = [
    "test_a_flow_retry_failed_reruns_the_failed_task",
    "test_a_new_execution_retry_ends_after_its_attempts",
    "test_a_new_execution_retry_ends_after_its_duration",
    "test_a_subflow_retried_by_a_new_execution_answers_its_parent",
    "test_retry_flowable_allows_the_failure_only_after_the_last_attempt",
    "test_retry_flowable_keeps_the_leaf_retry_inside_each_round",
    "test_retry_flowable_on_a_foreach_runs_every_iteration_again",
    "test_retry_flowable_runs_the_flowable_again_as_a_whole",
    "test_the_retry_stage_run_again_starts_no_second_execution",
]
