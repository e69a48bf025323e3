"""Subflows, cascades and the clock policy on temporal+postgres: the integration tests,
run unchanged (each child is a workflow of its own; the cascades go through the
control plane as on the embedded runtime)."""

from __future__ import annotations

from tests.integration.test_clock import (
    test_a_pause_held_past_the_timeout_ends_as_its_clock_policy_says,
)
from tests.integration.test_subflows import (
    test_a_failed_child_fails_its_task_only_with_transmit_failed,
    test_a_resume_that_does_not_cascade_keeps_the_children_held,
    test_a_subflow_runs_the_child_and_the_parent_reads_its_outputs,
    test_cancel_and_terminate_reach_every_descendant,
    test_killing_a_paused_child_never_lets_the_parent_go_on,
    test_pause_cascades_down_a_three_level_tree_and_resume_releases_it,
)

__all__ = [
    "test_a_failed_child_fails_its_task_only_with_transmit_failed",
    "test_a_pause_held_past_the_timeout_ends_as_its_clock_policy_says",
    "test_a_resume_that_does_not_cascade_keeps_the_children_held",
    "test_a_subflow_runs_the_child_and_the_parent_reads_its_outputs",
    "test_cancel_and_terminate_reach_every_descendant",
    "test_killing_a_paused_child_never_lets_the_parent_go_on",
    "test_pause_cascades_down_a_three_level_tree_and_resume_releases_it",
]
