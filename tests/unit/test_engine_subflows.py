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


def test_a_pause_that_holds_the_subflows_lands_once_each_child_has_stopped() -> None:
    """PAUSED means the whole tree has stopped: the execution stays PAUSING until the
    control plane says the child it waits for is paused (``child_paused``)."""
    driver = started_child()
    assert driver.command("pause").applied
    assert driver.status() is S.PAUSING
    told = driver.command("resume", by="system:subflows", child_paused=["child-1"])
    assert told.applied, told.message
    assert driver.status() is S.PAUSED
    (wait,) = [p for p in driver.state["pauses"].values() if p["kind"] == "subflow"]
    assert wait["settled"]
    # The resume lets the children run again: the next pause waits for them anew.
    assert driver.command("resume").applied
    assert driver.status() is S.RUNNING
    assert not any(p.get("settled") for p in driver.state["pauses"].values())
    assert driver.command("pause").applied
    assert driver.status() is S.PAUSING


def test_a_pause_that_does_not_cascade_lands_without_waiting_for_the_children() -> None:
    driver = started_child()
    assert driver.command("pause", cascade=False).applied
    assert driver.status() is S.PAUSED


def test_word_of_a_paused_child_is_refused_unless_the_execution_pauses_and_waits_for_it() -> None:
    driver = started_child()
    refused = driver.command("resume", by="system:subflows", child_paused=["child-1"])
    assert not refused.applied and "not pausing" in (refused.message or "")
    assert driver.command("pause").applied
    unknown = driver.command("resume", by="system:subflows", child_paused=["someone-else"])
    assert not unknown.applied and "does not wait for" in (unknown.message or "")


def test_a_child_that_ends_while_its_parent_pauses_lets_the_pause_land() -> None:
    driver = started_child()
    assert driver.command("pause").applied
    child_ended(driver, "COMPLETED")
    assert driver.status() is S.PAUSED
