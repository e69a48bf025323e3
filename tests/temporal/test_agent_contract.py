"""The agent tests of the embedded runtime, run unchanged on Temporal.

Model calls and tool calls are activities there; the model server, the
conversation and every control operation behave the same. Not imported: the
crash test (it stops an embedded process by hand; worker kills are covered in
test_worker_process.py).
"""

from __future__ import annotations

import pytest

from pausepoint.runtime.temporal import ExecutionWorker
from pausepoint.service.engine import Engine
from tests.agents.test_agent import (
    model,
    test_a_failing_tool_is_a_tool_result_not_a_crash,
    test_an_approval_rejects_bad_decisions_before_anything_changes,
    test_cancel_during_a_slow_model_call_aborts_the_request,
    test_inject_in_flight_reaches_the_next_call_once_after_the_tool_results,
    test_inject_while_paused_is_delivered_after_resume,
    test_multi_turn_tool_use_end_to_end,
    test_pause_lands_between_turns_and_no_request_is_sent_until_resume,
    test_rate_limits_and_server_errors_are_retried,
    test_tool_calls_that_need_approval_wait_for_a_person,
    test_unknown_tools_and_bad_arguments_go_back_to_the_model,
)


@pytest.fixture
async def engine(control_plane: Engine, worker: ExecutionWorker) -> Engine:
    await control_plane.put_secret("MODEL_KEY", "sk-test-123")
    return control_plane


__all__ = [
    "engine",
    "model",
    "test_a_failing_tool_is_a_tool_result_not_a_crash",
    "test_an_approval_rejects_bad_decisions_before_anything_changes",
    "test_cancel_during_a_slow_model_call_aborts_the_request",
    "test_inject_in_flight_reaches_the_next_call_once_after_the_tool_results",
    "test_inject_while_paused_is_delivered_after_resume",
    "test_multi_turn_tool_use_end_to_end",
    "test_pause_lands_between_turns_and_no_request_is_sent_until_resume",
    "test_rate_limits_and_server_errors_are_retried",
    "test_tool_calls_that_need_approval_wait_for_a_person",
    "test_unknown_tools_and_bad_arguments_go_back_to_the_model",
]
