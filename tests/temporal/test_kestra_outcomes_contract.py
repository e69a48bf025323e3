"""Kestra's own test flows, to the outcomes Kestra's tests state, on temporal+postgres."""

from __future__ import annotations

from tests.integration.test_kestra_outcomes import (
    test_a_dag_runs_every_task_after_its_dependencies,
    test_a_dags_errors_and_finally_run_when_a_task_fails,
    test_a_failed_subflow_fails_its_parent,
    test_a_labels_task_without_earlier_labels,
    test_a_subflow_waits_for_its_child_and_succeeds_with_it,
    test_after_execution_runs_flowable_tasks,
    test_after_execution_tasks_run_after_errors_and_see_the_failure,
    test_after_execution_tasks_run_after_finally,
    test_after_execution_tasks_run_once_the_execution_ended,
    test_allow_failure_on_a_failed_subflow_ends_in_warning,
    test_allow_warning_on_a_failed_subflow_ends_in_success,
    test_an_assertion_that_does_not_hold_fails_the_execution,
    test_exit_ends_the_execution_in_warning,
    test_exit_killed_kills_the_execution,
    test_fail_on_a_condition,
    test_fail_on_a_switch_case,
    test_labels_from_numbers_and_booleans,
    test_labels_tasks_set_the_execution_labels,
)

__all__ = [
    "test_a_dag_runs_every_task_after_its_dependencies",
    "test_a_dags_errors_and_finally_run_when_a_task_fails",
    "test_a_failed_subflow_fails_its_parent",
    "test_a_labels_task_without_earlier_labels",
    "test_a_subflow_waits_for_its_child_and_succeeds_with_it",
    "test_after_execution_runs_flowable_tasks",
    "test_after_execution_tasks_run_after_errors_and_see_the_failure",
    "test_after_execution_tasks_run_after_finally",
    "test_after_execution_tasks_run_once_the_execution_ended",
    "test_allow_failure_on_a_failed_subflow_ends_in_warning",
    "test_allow_warning_on_a_failed_subflow_ends_in_success",
    "test_an_assertion_that_does_not_hold_fails_the_execution",
    "test_exit_ends_the_execution_in_warning",
    "test_exit_killed_kills_the_execution",
    "test_fail_on_a_condition",
    "test_fail_on_a_switch_case",
    "test_labels_from_numbers_and_booleans",
    "test_labels_tasks_set_the_execution_labels",
]
