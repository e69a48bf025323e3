"""The control-contract tests of the embedded runtime, run unchanged on Temporal.

The ``engine`` fixture here (tests/temporal/conftest.py) is an API-server
engine on the Temporal runtime with a worker running; the tests themselves are
imported from tests/integration/test_control.py. Tests about embedded
processes handing executions to each other are not imported: on Temporal no
process holds an execution.
"""

from __future__ import annotations

from tests.integration.test_control import (
    test_a_pause_resumed_before_its_deadline_is_not_touched_by_the_timer,
    test_a_repeated_idempotency_key_returns_the_first_reply,
    test_cancel_a_paused_execution_cancels_at_once,
    test_cancel_a_running_step_cancels_it_cooperatively_and_runs_finally,
    test_events_have_gap_free_sequence_numbers,
    test_every_command_is_recorded_with_actor_reason_and_states,
    test_follow_yields_live_events_in_order_and_ends_after_the_terminal_one,
    test_inject_into_a_paused_execution_is_seen_after_resume,
    test_inject_is_visible_to_a_later_task,
    test_inject_with_an_empty_message_or_bad_role_is_refused,
    test_pause_behavior_on_timeout,
    test_pause_twice_is_a_conflict_naming_the_state,
    test_pause_while_a_step_runs_waits_for_it_then_pauses_before_the_next,
    test_resume_during_pausing_withdraws_the_pause,
    test_terminate_reason_longer_than_500_characters_is_refused,
    test_terminate_stops_at_once_without_cleanup,
    test_terminate_without_a_reason_is_refused,
)

__all__ = [
    "test_a_pause_resumed_before_its_deadline_is_not_touched_by_the_timer",
    "test_a_repeated_idempotency_key_returns_the_first_reply",
    "test_cancel_a_paused_execution_cancels_at_once",
    "test_cancel_a_running_step_cancels_it_cooperatively_and_runs_finally",
    "test_events_have_gap_free_sequence_numbers",
    "test_every_command_is_recorded_with_actor_reason_and_states",
    "test_follow_yields_live_events_in_order_and_ends_after_the_terminal_one",
    "test_inject_into_a_paused_execution_is_seen_after_resume",
    "test_inject_is_visible_to_a_later_task",
    "test_inject_with_an_empty_message_or_bad_role_is_refused",
    "test_pause_behavior_on_timeout",
    "test_pause_twice_is_a_conflict_naming_the_state",
    "test_pause_while_a_step_runs_waits_for_it_then_pauses_before_the_next",
    "test_resume_during_pausing_withdraws_the_pause",
    "test_terminate_reason_longer_than_500_characters_is_refused",
    "test_terminate_stops_at_once_without_cleanup",
    "test_terminate_without_a_reason_is_refused",
]
