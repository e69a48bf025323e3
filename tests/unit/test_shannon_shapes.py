"""The Shannon name tables, checked against what Shannon's own SDK (shannon-sdk 0.7.0) reads,
and the mapping of an approval decision onto a pause point."""

from __future__ import annotations

import json
from typing import Any

import pytest
from shannon import EventType, TaskStatusEnum

from pausepoint.api.shannon_shapes import (
    EVENT_TYPE,
    TASK_STATUS,
    ShannonFrames,
    event_type,
    shannon_event,
    states_with_status,
)
from pausepoint.engine.agent import approval_inputs
from pausepoint.engine.control import OpenPause
from pausepoint.flow.inputs import InputSpec
from pausepoint.models import EventView
from pausepoint.service.control import decision_command
from pausepoint.service.requests import CancelRequest, DecideRequest, ResumeRequest
from pausepoint.states import ExecutionState

# The SDK's wait() returns on these.
SDK_TERMINAL = {
    TaskStatusEnum.COMPLETED,
    TaskStatusEnum.FAILED,
    TaskStatusEnum.CANCELLED,
    TaskStatusEnum.TIMEOUT,
}


def sdk_status(name: str) -> TaskStatusEnum:
    """What the SDK's get_status makes of a status (an unknown one reads as FAILED)."""
    return TaskStatusEnum[name.replace("TASK_STATUS_", "")]


@pytest.mark.parametrize("state", list(ExecutionState))
def test_every_state_is_a_status_the_sdk_knows_and_wait_ends_on_terminal_ones(
    state: ExecutionState,
) -> None:
    status = sdk_status(TASK_STATUS[state])
    assert (status in SDK_TERMINAL) == state.is_terminal


def test_status_filters_take_shannons_names_in_any_spelling() -> None:
    assert states_with_status("running") == ("RUNNING", "PAUSING", "CANCELLING")
    assert states_with_status("TASK_STATUS_CANCELLED") == ("CANCELLED", "TERMINATED")
    assert states_with_status("canceled") == ("CANCELLED", "TERMINATED")
    assert states_with_status("TIMEOUT") == ("TIMED_OUT",)
    assert states_with_status("COMPLETED") == ("COMPLETED", "WARNING")
    assert states_with_status("SLEEPING") is None
    assert states_with_status("") is None


def test_every_event_type_is_one_the_sdk_names() -> None:
    sdk_names = {member.value for member in EventType}
    assert set(EVENT_TYPE.values()) <= sdk_names
    assert event_type("something.new") in sdk_names
    for control in ("pausing", "paused", "resumed", "cancelling", "cancelled"):
        assert event_type(f"workflow.{control}") == f"workflow.{control}"


def view(kind: str, seq: int = 3, **data: Any) -> EventView:
    return EventView(
        execution_id="ex1", seq=seq, type=kind, at="2026-01-02T03:04:05.000Z", data=data
    )


def test_an_event_in_shannons_fields_and_an_approval_request_naming_its_pause_point() -> None:
    paused = shannon_event(view("workflow.paused", checkpoint="pre_execution", reason="look"))
    assert paused == {
        "workflow_id": "ex1",
        "type": "workflow.paused",
        "message": "Paused at pre_execution: look",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "seq": 3,
        "payload": {"event": "workflow.paused", "checkpoint": "pre_execution", "reason": "look"},
    }
    asked = shannon_event(
        view("task.paused", task_id="review", pause_id="p-1", on_resume=["approved"])
    )
    assert asked["type"] == "APPROVAL_REQUESTED" and asked["agent_id"] == "review"
    assert json.loads(asked["message"])["approval_id"] == "p-1"


def test_frames_carry_the_seq_as_id_and_leave_out_types_not_asked_for() -> None:
    started = view("workflow.started", seq=1)
    frame = ShannonFrames().stored(started)
    assert frame.startswith("id: 1\nevent: WORKFLOW_STARTED\ndata: {")
    assert frame.endswith("\n\n")
    only_paused = ShannonFrames(frozenset({"workflow.paused"}))
    assert only_paused.stored(started) == ""
    assert only_paused.stored(view("workflow.paused", checkpoint="x")) != ""
    assert ShannonFrames(frozenset({"a"})) == ShannonFrames(frozenset({"a"}))  # one channel


def decide(approved: bool, feedback: str | None = None) -> DecideRequest:
    return DecideRequest(
        execution_id="ex1", pause_id="p-1", approved=approved, reason=feedback, actor="key:k"
    )


def specs(*declared: tuple[str, str]) -> list[InputSpec]:
    return [InputSpec(id=name, type=kind, required=False) for name, kind in declared]


def test_a_decision_answers_a_boolean_approved_input_with_the_feedback() -> None:
    pause = OpenPause(id="p-1", kind="task", task_path="tasks[1]", task_id="review")
    declared = specs(("approved", "BOOLEAN"), ("feedback", "STRING"))
    denied = decision_command(decide(False, "wrong"), pause, declared)
    assert isinstance(denied, ResumeRequest)
    assert denied.inputs == {"approved": False, "feedback": "wrong"}
    assert (denied.pause_id, denied.actor) == ("p-1", "key:k")
    approved = decision_command(decide(True), pause, declared)
    assert isinstance(approved, ResumeRequest) and approved.inputs == {"approved": True}


def test_a_decision_on_an_agent_tool_call_approves_or_rejects_it() -> None:
    pause = OpenPause(id="p-1", kind="approval")
    declared = [InputSpec.model_validate(spec) for spec in approval_inputs("search", {})]
    denied = decision_command(decide(False, "unsafe"), pause, declared)
    assert isinstance(denied, ResumeRequest)
    assert denied.inputs == {"decision": "reject", "reason": "unsafe"}
    approved = decision_command(decide(True), pause, declared)
    assert isinstance(approved, ResumeRequest) and approved.inputs == {"decision": "approve"}


def test_a_denial_with_no_input_to_say_no_cancels_with_the_feedback_as_reason() -> None:
    pause = OpenPause(id="p-1", kind="manual")
    denied = decision_command(decide(False, "not now"), pause, [])
    assert isinstance(denied, CancelRequest) and denied.reason == "not now"
    silent = decision_command(decide(False), pause, [])
    assert isinstance(silent, CancelRequest) and silent.reason == "pause point p-1 was denied"
    approved = decision_command(decide(True, "fine"), pause, [])
    assert isinstance(approved, ResumeRequest) and approved.inputs == {}
