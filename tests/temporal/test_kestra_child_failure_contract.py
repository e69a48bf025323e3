"""ForEach's childFailurePolicy, failFast and deduplicate, and Parallel's and Dag's
onChildFailure, to the outcomes Kestra states, on temporal+postgres."""

from __future__ import annotations

from tests.integration.test_kestra_child_failure import (
    test_an_interrupted_pause_task_leaves_nothing_paused,
    test_dag_on_child_failure_cancelled_cancels_the_sleep,
    test_foreach_continue_runs_every_iteration_then_fails,
    test_foreach_fail_fast_cancels_the_running_iterations,
    test_foreach_failing_runs_errors_then_finally,
    test_foreach_keeps_duplicate_values_without_deduplicate,
    test_foreach_stop_runs_its_errors_after_the_iterations_it_started,
    test_foreach_stop_starts_no_iteration_after_a_failure,
    test_foreach_succeeding_runs_only_finally,
    test_foreach_without_fail_fast_lets_every_iteration_end,
    test_kestra_foreach_runs_each_distinct_value_once,
    test_parallel_fail_fast_ignores_a_failure_allowed,
    test_parallel_fail_fast_kills_the_slow_sibling,
    test_parallel_on_child_failure_continue_lets_the_others_finish,
    test_parallel_on_child_failure_fail_fails_what_runs_at_any_depth,
)

__all__ = [
    "test_an_interrupted_pause_task_leaves_nothing_paused",
    "test_dag_on_child_failure_cancelled_cancels_the_sleep",
    "test_foreach_continue_runs_every_iteration_then_fails",
    "test_foreach_fail_fast_cancels_the_running_iterations",
    "test_foreach_failing_runs_errors_then_finally",
    "test_foreach_keeps_duplicate_values_without_deduplicate",
    "test_foreach_stop_runs_its_errors_after_the_iterations_it_started",
    "test_foreach_stop_starts_no_iteration_after_a_failure",
    "test_foreach_succeeding_runs_only_finally",
    "test_foreach_without_fail_fast_lets_every_iteration_end",
    "test_kestra_foreach_runs_each_distinct_value_once",
    "test_parallel_fail_fast_ignores_a_failure_allowed",
    "test_parallel_fail_fast_kills_the_slow_sibling",
    "test_parallel_on_child_failure_continue_lets_the_others_finish",
    "test_parallel_on_child_failure_fail_fails_what_runs_at_any_depth",
]
