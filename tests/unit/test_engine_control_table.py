"""Every control operation from every execution state (ARCHITECTURE.md §3).

The table says, for each (state, operation), whether the engine applies the
command and the status it leaves, or rejects it with a message naming the
state. The named edge cases follow as their own tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pausepoint.engine.model import CancelTask, CommandResult, ExecutionStatus, RunTask

from .engine_driver import Driver

S = ExecutionStatus

TWO_LOGS = """
id: table
timeout: PT1H
tasks:
  - id: first
    type: log
    message: one
  - id: second
    type: log
    message: two
"""

ALLOWED_FAILURE = """
id: table
tasks:
  - id: first
    type: log
    message: one
    allowFailure: true
"""

PAUSE_TASK_FIRST = """
id: table
tasks:
  - id: approve
    type: pause
  - id: after
    type: log
    message: after
"""

# -- reaching each state -----------------------------------------------------------------


def queued() -> Driver:
    return Driver.of(TWO_LOGS)


def running() -> Driver:
    driver = Driver.of(TWO_LOGS)
    driver.start()
    return driver


def pausing() -> Driver:
    driver = running()
    assert driver.pause("look").applied
    assert driver.status() is S.PAUSING
    return driver


def paused_manual() -> Driver:
    driver = pausing()
    driver.complete("first")
    assert driver.status() is S.PAUSED
    return driver


def paused_on_task() -> Driver:
    driver = Driver.of(PAUSE_TASK_FIRST)
    driver.start()
    assert driver.status() is S.PAUSED
    assert driver.state["checkpoint"] == "pause_task"
    return driver


def cancelling() -> Driver:
    driver = running()
    assert driver.cancel().applied
    assert driver.status() is S.CANCELLING
    return driver


def completed() -> Driver:
    driver = running()
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED
    return driver


def warning() -> Driver:
    driver = Driver.of(ALLOWED_FAILURE)
    driver.start()
    driver.fail("first")
    assert driver.status() is S.WARNING
    return driver


def failed() -> Driver:
    driver = running()
    driver.fail("first")
    assert driver.status() is S.FAILED
    return driver


def cancelled() -> Driver:
    driver = cancelling()
    driver.ack_all_cancels()
    assert driver.status() is S.CANCELLED
    return driver


def terminated() -> Driver:
    driver = running()
    assert driver.terminate().applied
    assert driver.status() is S.TERMINATED
    return driver


def timed_out() -> Driver:
    driver = running()
    driver.fire_due_timers(advance_clock_to=1000.0 + 3600.0)
    assert driver.status() is S.CANCELLING
    driver.ack_all_cancels()
    assert driver.status() is S.TIMED_OUT
    return driver


STATES: dict[str, Callable[[], Driver]] = {
    "queued": queued,
    "running": running,
    "pausing": pausing,
    "paused_manual": paused_manual,
    "paused_on_task": paused_on_task,
    "cancelling": cancelling,
    "completed": completed,
    "warning": warning,
    "failed": failed,
    "cancelled": cancelled,
    "terminated": terminated,
    "timed_out": timed_out,
}


@dataclass(frozen=True)
class Applied:
    status: ExecutionStatus


@dataclass(frozen=True)
class Rejected:
    says: str  # a fragment the rejection message must contain (case-insensitive)


def _terminal_row(name: str) -> dict[str, Applied | Rejected]:
    return {
        op: Rejected(f"cannot {op} {name} execution")
        for op in ("pause", "resume", "cancel", "terminate", "inject")
    }


TABLE: dict[str, dict[str, Applied | Rejected]] = {
    "queued": {
        "pause": Applied(S.PAUSED),
        "resume": Rejected("it is QUEUED, not paused"),
        "cancel": Applied(S.CANCELLED),
        "terminate": Applied(S.TERMINATED),
        "inject": Applied(S.QUEUED),
    },
    "running": {
        "pause": Applied(S.PAUSING),
        "resume": Rejected("it is RUNNING, not paused"),
        "cancel": Applied(S.CANCELLING),
        "terminate": Applied(S.TERMINATED),
        "inject": Applied(S.RUNNING),
    },
    "pausing": {
        "pause": Rejected("is already pausing"),
        "resume": Applied(S.RUNNING),
        "cancel": Applied(S.CANCELLING),
        "terminate": Applied(S.TERMINATED),
        "inject": Applied(S.PAUSING),
    },
    "paused_manual": {
        "pause": Rejected("is already paused"),
        "resume": Applied(S.RUNNING),
        "cancel": Applied(S.CANCELLED),
        "terminate": Applied(S.TERMINATED),
        "inject": Applied(S.PAUSED),
    },
    "paused_on_task": {
        # A manual pause on top of a Pause task holds the execution even when the
        # Pause task is resumed (or expires): accepted, stays PAUSED.
        "pause": Applied(S.PAUSED),
        "resume": Applied(S.RUNNING),
        "cancel": Applied(S.CANCELLED),
        "terminate": Applied(S.TERMINATED),
        "inject": Applied(S.PAUSED),
    },
    "cancelling": {
        "pause": Rejected("being cancelled"),
        "resume": Rejected("being cancelled"),
        "cancel": Applied(S.CANCELLING),  # idempotent
        "terminate": Applied(S.TERMINATED),
        "inject": Rejected("being cancelled"),
    },
    "completed": _terminal_row("completed"),
    "warning": _terminal_row("warning"),
    "failed": _terminal_row("failed"),
    "cancelled": _terminal_row("cancelled"),
    "terminated": _terminal_row("terminated"),
    "timed_out": _terminal_row("timed out"),
}

CASES = [
    pytest.param(state, op, expected, id=f"{state}-{op}")
    for state, row in TABLE.items()
    for op, expected in row.items()
]


def _operate(driver: Driver, op: str) -> CommandResult:
    if op == "pause":
        return driver.pause("why")
    if op == "resume":
        return driver.resume()
    if op == "cancel":
        return driver.cancel("enough")
    if op == "terminate":
        return driver.terminate("now")
    return driver.inject("hello there", role="user")


def test_the_table_covers_every_state_and_operation() -> None:
    assert set(TABLE) == set(STATES)
    for row in TABLE.values():
        assert set(row) == {"pause", "resume", "cancel", "terminate", "inject"}


@pytest.mark.parametrize(("state", "op", "expected"), CASES)
def test_control_operation(state: str, op: str, expected: Applied | Rejected) -> None:
    driver = STATES[state]()
    before = driver.status()
    result = _operate(driver, op)
    if isinstance(expected, Applied):
        assert result.applied, result.message
        assert driver.status() is expected.status
        assert result.status is expected.status
    else:
        assert not result.applied
        assert expected.says.lower() in result.message.lower()
        assert driver.status() is before
        assert driver.last.events_of("command.rejected")


# -- edge cases ----------------------------------------------------------------------------


def test_pause_while_pausing_is_rejected_and_keeps_one_pause_point() -> None:
    driver = pausing()
    result = driver.pause("again")
    assert not result.applied
    assert "already pausing" in result.message
    assert len(driver.open_pauses) == 1
    driver.complete("first")
    assert driver.status() is S.PAUSED


def test_resume_during_pausing_withdraws_the_pause_and_it_never_lands() -> None:
    driver = pausing()
    result = driver.resume()
    assert result.applied
    assert driver.status() is S.RUNNING
    resumed = driver.events_of("workflow.resumed")
    assert resumed and resumed[-1].data["withdrawn"] is True
    assert driver.open_pauses == []
    # The in-flight task finishing is no checkpoint for the withdrawn pause.
    step = driver.complete("first")
    assert driver.status() is S.RUNNING
    assert [a.task_id for a in step.run_tasks] == ["second"]
    assert driver.drive_to_end() is S.COMPLETED
    assert driver.events_of("workflow.paused") == []


def test_pause_while_queued_lands_at_once_and_resume_starts_the_execution() -> None:
    driver = queued()
    assert driver.pause().applied
    assert driver.status() is S.PAUSED
    assert driver.events_of("workflow.paused")[0].data["checkpoint"] == "pre_execution"
    step = driver.start()
    assert step.run_tasks == [] and driver.status() is S.PAUSED
    driver.resume()
    assert driver.status() is S.RUNNING
    assert [a.task_id for a in driver.last.run_tasks] == ["first"]
    assert driver.drive_to_end() is S.COMPLETED


def test_manual_pause_lands_pre_completion_after_the_last_task() -> None:
    driver = running()
    driver.complete("first")
    driver.pause()
    driver.complete("second")
    assert driver.status() is S.PAUSED
    assert driver.state["checkpoint"] == "pre_completion"
    driver.resume()
    assert driver.status() is S.COMPLETED


def test_manual_pause_after_the_last_task_lands_pre_completion_despite_unused_errors() -> None:
    """The main block succeeded and there is no `finally`: the `errors` block never runs."""
    driver = Driver.of("""
id: with-errors
tasks:
  - {id: only, type: log, message: only}
errors:
  - {id: on-error, type: log, message: handle}
""")
    driver.start()
    driver.pause()
    driver.complete("only")
    assert driver.status() is S.PAUSED
    assert driver.state["checkpoint"] == "pre_completion"
    driver.resume()
    assert driver.status() is S.COMPLETED
    assert "on-error" not in driver.started_task_ids()


def test_cancel_while_paused_on_a_pause_task_cancels_at_once_and_successors_never_start() -> None:
    driver = paused_on_task()
    result = driver.cancel("no")
    assert result.applied
    assert driver.status() is S.CANCELLED
    assert driver.run_of("approve")["state"] == "CANCELLED"
    assert "after" not in driver.started_task_ids()
    assert driver.last.run_tasks == []


def test_cancel_while_paused_manually_cancels_at_once_and_successors_never_start() -> None:
    driver = paused_manual()
    assert driver.cancel().applied
    assert driver.status() is S.CANCELLED
    assert driver.started_task_ids() == ["first"]
    assert [e.type for e in driver.last.transition.events][-1] == "workflow.cancelled"


def test_terminate_while_paused_runs_nothing_else_and_skips_finally() -> None:
    driver = Driver.of(
        PAUSE_TASK_FIRST + "finally:\n  - id: cleanup\n    type: log\n    message: bye\n"
    )
    driver.start()
    assert driver.status() is S.PAUSED
    result = driver.terminate("stop now")
    assert result.applied
    assert driver.status() is S.TERMINATED
    assert driver.last.run_tasks == []
    assert driver.started_task_ids() == ["approve"]
    terminated_event = driver.events_of("workflow.terminated")[0]
    assert terminated_event.data["reason"] == "stop now"
    # Nothing that arrives later moves it.
    assert not driver.resume().applied
    driver.fire_due_timers(advance_clock_to=10_000.0)
    assert driver.status() is S.TERMINATED


def test_pause_after_cancel_was_requested_is_rejected() -> None:
    driver = cancelling()
    result = driver.pause()
    assert not result.applied
    assert "cancel" in result.message
    assert driver.status() is S.CANCELLING
    driver.ack_all_cancels()
    assert driver.status() is S.CANCELLED


def test_inject_into_a_paused_run_reaches_the_next_task_after_resume() -> None:
    driver = Driver.of("""
id: inject
tasks:
  - id: first
    type: log
    message: one
  - id: second
    type: log
    message: "{{ context.messages }}"
""")
    driver.start()
    driver.pause()
    driver.complete("first")
    assert driver.status() is S.PAUSED
    result = driver.inject("please be careful", role="system")
    assert result.applied
    assert driver.status() is S.PAUSED
    messages = driver.state["context"]["messages"]
    assert [(m["role"], m["message"]) for m in messages] == [("system", "please be careful")]
    assert driver.events_of("context.injected")[0].data["message"] == "please be careful"
    assert driver.last.run_tasks == []
    driver.resume()
    (second,) = driver.last.run_tasks
    assert second.task_id == "second"
    assert "please be careful" in json.dumps(second.spec)


def test_timer_firing_after_a_manual_resume_changes_nothing() -> None:
    """Kestra #18507: a resumed Pause task's old timer must not resume it again."""
    driver = Driver.of("""
id: late-timer
tasks:
  - id: approve
    type: pause
    pauseDuration: PT1M
    onResume:
      - id: answer
        type: STRING
        defaults: from-timer
  - id: after
    type: log
    message: "{{ outputs.approve.onResume.answer }}"
""")
    driver.start()
    pause_id = driver.task_pause_id("approve")
    timer_id = f"pause:{pause_id}"
    deadline = driver.timers[timer_id]
    assert driver.resume(pause_id, answer="from-human").applied
    assert timer_id not in driver.timers
    (after,) = driver.last.run_tasks
    assert after.spec["message"] == "from-human"
    before = json.dumps(driver.state, sort_keys=True)
    step = driver.fire(timer_id, at=deadline)
    assert step.transition.actions == [] and step.transition.events == []
    assert json.dumps(driver.state, sort_keys=True) == before
    assert driver.run_of("approve")["outputs"]["onResume"] == {"answer": "from-human"}
    assert driver.run_of("approve")["outputs"]["resumed"]["by"] == "tester"
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED
    assert driver.state["outputs"]["approve"]["onResume"] == {"answer": "from-human"}


def test_resume_needs_a_pause_id_when_several_pause_points_are_open() -> None:
    driver = Driver.of("""
id: two-pauses
tasks:
  - id: both
    type: parallel
    tasks:
      - id: left
        type: pause
      - id: right
        type: pause
""")
    driver.start()
    assert driver.status() is S.PAUSED
    left, right = driver.task_pause_id("left"), driver.task_pause_id("right")
    assert set(driver.open_pauses) == {left, right}
    result = driver.resume()
    assert not result.applied
    assert "pause_id" in result.message
    assert left in result.message and right in result.message
    assert driver.status() is S.PAUSED
    assert driver.resume(right).applied
    assert driver.open_pauses == [left]
    assert driver.run_of("right")["state"] == "SUCCESS"
    assert driver.status() is S.PAUSED  # the other Pause task still waits
    assert driver.resume().applied  # one pause point left: no pause_id needed
    assert driver.status() is S.COMPLETED


def test_resume_names_the_manual_pause_among_several() -> None:
    driver = paused_on_task()
    manual = driver.pause("hold")
    assert manual.applied
    assert set(driver.open_pauses) == {manual.command_id, driver.task_pause_id("approve")}
    rejected = driver.resume()
    assert not rejected.applied and "manual pause" in rejected.message
    # Resuming the Pause task alone does not run anything while the manual pause holds.
    assert driver.resume(driver.task_pause_id("approve")).applied
    assert driver.status() is S.PAUSED
    assert "after" not in driver.started_task_ids()
    assert driver.resume(manual.command_id).applied
    assert driver.status() is S.RUNNING
    assert [a.task_id for a in driver.last.run_tasks] == ["after"]


def test_resume_with_an_unknown_pause_id_is_rejected_listing_the_open_ones() -> None:
    driver = paused_manual()
    result = driver.resume("nope")
    assert not result.applied
    assert "nope" in result.message and driver.open_pauses[0] in result.message


FINALLY_FLOW = """
id: with-finally
tasks:
  - id: work
    type: log
    message: work
  - id: more
    type: log
    message: more
finally:
  - id: cleanup
    type: log
    message: cleanup
"""


def test_cancel_runs_finally_tasks_then_ends_cancelled() -> None:
    driver = Driver.of(FINALLY_FLOW)
    driver.start()
    driver.cancel("stop")
    assert driver.status() is S.CANCELLING
    assert driver.outstanding["t1"].cancel_requested
    step = driver.ack_cancel("work")
    assert driver.status() is S.CANCELLING
    assert driver.state["phase"] == "finally"
    assert [a.task_id for a in step.run_tasks] == ["cleanup"]
    driver.complete("cleanup")
    assert driver.status() is S.CANCELLED
    assert "more" not in driver.started_task_ids()
    assert driver.run_of("work")["state"] == "CANCELLED"
    assert driver.run_of("cleanup")["state"] == "SUCCESS"


def test_terminate_runs_no_finally_and_kills_in_flight_work() -> None:
    driver = Driver.of(FINALLY_FLOW)
    driver.start()
    result = driver.terminate("kill it")
    assert result.applied
    assert driver.status() is S.TERMINATED
    kills = [a for a in driver.last.transition.actions if isinstance(a, CancelTask) and a.kill]
    assert [k.task_run_id for k in kills] == ["t1"]
    assert not any(isinstance(a, RunTask) for a in driver.last.transition.actions)
    assert "cleanup" not in driver.started_task_ids()
    assert driver.run_of("work")["state"] == "CANCELLED"
    assert driver.outstanding == {}


def test_terminate_during_finally_after_a_cancel_stops_finally_at_once() -> None:
    driver = Driver.of(FINALLY_FLOW)
    driver.start()
    driver.cancel()
    driver.ack_cancel("work")
    assert driver.outstanding_of("cleanup")
    assert driver.terminate("too slow").applied
    assert driver.status() is S.TERMINATED
    assert driver.run_of("cleanup")["state"] == "CANCELLED"
