"""Subflow tasks as the engine does them: the wait on the child's end, what the end
does to the task (transmitFailed), control around the wait, and a child created held.

The child's end arrives as the control plane sends it: a resume of the ``subflow``
pause point carrying the child's state and outputs.
"""

from __future__ import annotations

import pytest

from pausepoint.engine.control import admit, view_of
from pausepoint.engine.model import Command, ExecutionStatus
from pausepoint.engine.state import hold_before_start
from pausepoint.errors import Conflict

from .engine_driver import Driver

S = ExecutionStatus

PARENT = """
id: parent
tasks:
  - id: call
    type: subflow
    namespace: n
    flowId: child
    transmitFailed: {transmit}
  - id: after
    type: log
    message: "{{{{ outputs.call.state }}}}"
"""


def started_child(transmit: bool = True) -> Driver:
    driver = Driver.of(PARENT.format(transmit=str(transmit).lower()))
    driver.start()
    driver.complete("call", {"executionId": "child-1"})
    return driver


def child_ended(driver: Driver, state: str, **extra: object) -> None:
    pause_id = driver.open_pauses[0]
    child = {"id": "child-1", "state": state, "outputs": {"x": 1}, **extra}
    result = driver.command("resume", by="system:subflows", pause_id=pause_id, child=child)
    assert result.applied, result.message


def test_the_task_waits_on_a_subflow_pause_point_and_the_execution_stays_running() -> None:
    driver = started_child()
    assert driver.status() is S.RUNNING
    (pause_id,) = driver.open_pauses
    assert driver.state["pauses"][pause_id]["kind"] == "subflow"
    assert driver.state["pauses"][pause_id]["child"] == "child-1"
    assert driver.run_of("call")["state"] == "RUNNING"
    child_ended(driver, "COMPLETED")
    assert driver.run_of("call")["outputs"] == {
        "executionId": "child-1",
        "state": "COMPLETED",
        "outputs": {"x": 1},
    }
    assert driver.drive_to_end() is S.COMPLETED


@pytest.mark.parametrize(
    ("transmit", "child", "task", "execution"),
    [
        (True, "FAILED", "FAILED", S.FAILED),
        (True, "CANCELLED", "FAILED", S.FAILED),
        (True, "TERMINATED", "FAILED", S.FAILED),
        (True, "TIMED_OUT", "FAILED", S.FAILED),
        (True, "WARNING", "WARNING", S.WARNING),
        (False, "TERMINATED", "SUCCESS", S.COMPLETED),
        (False, "FAILED", "SUCCESS", S.COMPLETED),
    ],
)
def test_the_childs_end_ends_the_task_as_transmit_failed_says(
    transmit: bool, child: str, task: str, execution: ExecutionStatus
) -> None:
    driver = started_child(transmit)
    child_ended(driver, child)
    assert driver.run_of("call")["state"] == task
    assert driver.drive_to_end() is execution


def test_a_person_cannot_answer_a_subflow_wait() -> None:
    driver = started_child()
    view = view_of(driver.state)
    with pytest.raises(Conflict, match="waits for its subflow executions"):
        admit(view, Command("c1", "resume", 0.0, by="alice"), driver.index)


def test_outputs_that_could_not_be_read_fail_the_task() -> None:
    driver = started_child()
    child_ended(driver, "COMPLETED", error="its outputs could not be read: boom")
    assert driver.run_of("call")["state"] == "FAILED"
    assert "boom" in driver.run_of("call")["error"]


def test_cancel_cancels_the_waiting_task_and_records_whether_it_cascades() -> None:
    driver = started_child()
    driver.command("cancel", reason="stop", cascade=False)
    assert driver.run_of("call")["state"] == "CANCELLED"
    assert driver.state["stop"]["cascade"] is False
    assert driver.drive_to_end() is S.CANCELLED


def test_a_state_created_held_runs_nothing_until_its_hold_is_resumed() -> None:
    driver = Driver.of(PARENT.format(transmit="true"))
    hold_before_start(driver.state, "cascade-p1", by="cascade:root", reason="held", at=0.0)
    driver.recover()  # how a runtime picks up an execution that is not QUEUED
    assert driver.status() is S.PAUSED
    assert driver.started_task_ids() == []
    driver.resume("cascade-p1")
    assert driver.status() is S.RUNNING
    assert driver.started_task_ids() == ["call"]
