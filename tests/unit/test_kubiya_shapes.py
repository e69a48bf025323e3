"""Kubiya's names: every pausepoint state has a Kubiya status, terminal events close with
``done``, and the stream's ids resume where they say.

Kubiya's statuses and event names are read from ``kubiya-control-plane-api`` 1.0.2
(AGPL-3.0): ``app/models/execution.py`` ExecutionStatus and
``app/routers/executions/streaming/event_formatter.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pausepoint.api.kubiya_shapes import (
    FINAL_STATUS,
    STATUS,
    KubiyaFrames,
    batch_terminate_reply,
    kubiya_events,
    parse_event_id,
)
from pausepoint.errors import InvalidInput
from pausepoint.models import TERMINAL_EVENT_TYPES, EventView
from pausepoint.states import ExecutionState
from pausepoint.wire import BulkItem, BulkReply

KUBIYA_STATUSES = {
    "pending",
    "queued",
    "running",
    "waiting_for_input",
    "paused",
    "completed",
    "failed",
    "cancelled",
}
WHERE = ("query", "last_event_id")


def event(kind: str, seq: int = 7, **data: Any) -> EventView:
    return EventView(
        execution_id="ex_1", seq=seq, type=kind, at="2026-12-05T00:00:00+00:00", data=data
    )


def test_every_state_has_a_kubiya_status() -> None:
    assert set(STATUS) == set(ExecutionState)
    assert set(STATUS.values()) <= KUBIYA_STATUSES


@pytest.mark.parametrize("kind", sorted(TERMINAL_EVENT_TYPES))
def test_each_terminal_event_ends_with_done_and_its_final_status(kind: str) -> None:
    shown = kubiya_events(event(kind, error="boom"))
    assert [name for name, _ in shown][-1] == "done"
    assert shown[-1][1]["workflow_status"] == FINAL_STATUS[kind]
    if FINAL_STATUS[kind] == "failed":
        assert shown[0] == (
            "error",
            {
                "error": "boom",
                "error_type": "timeout_error" if kind.endswith("timed_out") else "execution_error",
                "execution_id": "ex_1",
                "status": "failed",
                "pausepoint_event": kind,
            },
        )


def test_a_pause_task_is_waiting_for_input_and_an_operator_pause_is_paused() -> None:
    waiting = kubiya_events(event("workflow.paused", checkpoint="pause_task"))
    paused = kubiya_events(event("workflow.paused", checkpoint="pre_execution"))
    assert (waiting[0][1]["status"], paused[0][1]["status"]) == ("waiting_for_input", "paused")


def test_frames_put_the_id_on_the_last_frame_of_an_event() -> None:
    text = KubiyaFrames().stored(event("workflow.completed", seq=9))
    first, second = text.strip().split("\n\n")
    assert first.startswith("event: status\n")
    assert second.startswith("id: ex_1_9_")
    assert json.loads(second.rpartition("data: ")[2])["workflow_status"] == "completed"
    assert KubiyaFrames().stored(event("task.paused")) == ""


def test_event_ids_parse_back_to_their_sequence_number() -> None:
    assert parse_event_id("ex_1_9_1700000000000000", "ex_1", WHERE) == 9
    assert parse_event_id("12", "ex_1", WHERE) == 12
    assert parse_event_id(None, "ex_1", WHERE) is None
    for bad in ("garbage", "ex_2_9_1700000000000000", "ex_1_x_1", "ex_1_" + "9" * 30 + "_1"):
        with pytest.raises(InvalidInput) as raised:
            parse_event_id(bad, "ex_1", WHERE)
        assert raised.value.errors[0].loc == WHERE


def test_batch_results_answer_each_id_asked_in_order() -> None:
    reply = BulkReply(
        dry_run=False,
        results=[
            BulkItem(
                execution_id="a", status=200, state="TERMINATED", message="ok", terminated_at="t"
            ),
            BulkItem(execution_id="b", status=404, message="execution b not found"),
        ],
    )
    shaped = batch_terminate_reply(["a", "b", "a"], reply)
    assert (shaped.total_requested, shaped.total_succeeded, shaped.total_failed) == (3, 2, 1)
    assert [(r.execution_id, r.success, r.workflow_id, r.error) for r in shaped.results] == [
        ("a", True, "a", None),
        ("b", False, None, "execution b not found"),
        ("a", True, "a", None),
    ]
