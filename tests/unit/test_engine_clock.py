"""The clock policy on a controllable clock: a pause that freezes the clock stops every
deadline of the execution, and each resumes with the time it had left; with RUN (the
default) deadlines fall due while it is paused.
"""

from __future__ import annotations

import pytest

from pausepoint.engine.model import ExecutionStatus, SetTimer

from .engine_driver import Driver

S = ExecutionStatus

TIMED = """
id: timed
timeout: PT5S
{clock}
tasks:
  - id: first
    type: log
    message: one
  - id: second
    type: log
    message: two
"""


def paused_after_first(clock: str = "", freeze_clock: bool | None = None) -> Driver:
    driver = Driver.of(TIMED.format(clock=clock))
    driver.start()  # t0: the execution's timeout falls due at t0 + 5
    driver.command("pause", freeze_clock=freeze_clock)  # t0 + 1: PAUSING, `first` still runs
    driver.complete("first")  # t0 + 2: the pause lands
    assert driver.status() is S.PAUSED
    return driver


@pytest.mark.parametrize(
    ("clock", "freeze_clock"),
    [("clock: FREEZE", None), ("", True)],
    ids=["the flow's policy", "the request's"],
)
def test_a_frozen_pause_of_ten_seconds_does_not_use_up_a_five_second_timeout(
    clock: str, freeze_clock: bool | None
) -> None:
    driver = paused_after_first(clock, freeze_clock)
    start = driver.state["started_at"]
    assert driver.timers == {}  # every deadline is off while it is held
    assert driver.fire_due_timers(advance_clock_to=start + 12) == []
    driver.resume()  # t0 + 13: it had 3 seconds left
    assert driver.timers == {"execution": pytest.approx(start + 5 + 11)}
    (resumed,) = driver.events_of("clock.resumed")
    assert resumed.data["stood_still_seconds"] == pytest.approx(11)
    driver.complete("second")
    assert driver.status() is S.COMPLETED


def test_with_run_the_timeout_falls_due_while_paused() -> None:
    driver = paused_after_first()
    start = driver.state["started_at"]
    driver.fire_due_timers(advance_clock_to=start + 12)
    assert driver.status() is S.TIMED_OUT
    assert driver.started_task_ids() == ["first"]


def test_a_request_may_run_the_clock_of_a_flow_that_freezes_it() -> None:
    driver = paused_after_first("clock: FREEZE", freeze_clock=False)
    driver.fire_due_timers(advance_clock_to=driver.state["started_at"] + 12)
    assert driver.status() is S.TIMED_OUT


GATED = """
id: gated
clock: FREEZE
tasks:
  - id: gate
    type: pause
    pauseDuration: PT2S
    behavior: RESUME
  - id: after
    type: log
    message: on
"""


def test_a_pause_duration_held_five_seconds_expires_two_running_seconds_after_its_start() -> None:
    driver = Driver.of(GATED)
    driver.start()
    opened = driver.now  # the Pause task waits until opened + 2
    driver.command("pause")  # opened + 1: held, the clock stops with 1 second left
    driver.tick(to=opened + 6)
    assert driver.fire_due_timers() == []
    driver.resume(driver.open_pauses[-1])  # opened + 7: 5 seconds stood still
    assert driver.run_of("gate")["state"] == "PAUSED"
    driver.fire_due_timers(advance_clock_to=opened + 7.9)
    assert driver.run_of("gate")["state"] == "PAUSED"  # not before its time
    driver.fire_due_timers(advance_clock_to=opened + 8)
    assert driver.run_of("gate")["state"] == "SUCCESS"
    assert driver.run_of("gate")["ended_at"] == pytest.approx(opened + 2 + 6)


def test_a_person_answering_a_pause_task_while_the_clock_is_frozen_wins() -> None:
    driver = Driver.of(GATED)
    driver.start()
    gate = driver.task_pause_id("gate")
    driver.command("pause")
    driver.resume(gate)  # answered during the freeze: its deadline is gone for good
    hold = next(p for p in driver.open_pauses if p != gate)
    driver.tick(by=30)
    driver.resume(hold)
    assert driver.fire_due_timers(advance_clock_to=driver.now + 30) == []
    assert driver.drive_to_end() is S.COMPLETED
    assert "resumed" in driver.run_of("gate")["outputs"]
    assert driver.run_of("gate")["outputs"]["resumed"]["by"] == "tester"


def test_cancel_during_a_frozen_pause_drops_the_frozen_deadlines() -> None:
    driver = paused_after_first("clock: FREEZE")
    driver.cancel("no longer needed")
    assert driver.status() is S.CANCELLED
    assert "frozen" not in driver.state
    assert driver.timers == {}


def test_with_run_deadlines_that_fell_due_meanwhile_are_armed_earliest_first() -> None:
    """After a long pause the runtime takes the execution up again: the timers already due
    are armed in deadline order, so they act in that order, not in the order they were set."""
    driver = Driver.of(
        """
id: two_gates
timeout: PT1H
tasks:
  - id: both
    type: parallel
    tasks:
      - id: late
        type: pause
        pauseDuration: PT30S
        behavior: RESUME
      - id: early
        type: pause
        pauseDuration: PT10S
        behavior: RESUME
"""
    )
    driver.start()
    driver.tick(by=3600 * 2)
    step = driver.recover()
    armed = [a.timer_id for a in step.transition.actions if isinstance(a, SetTimer)]
    deadlines = [driver.state["timers"][timer_id]["deadline"] for timer_id in armed]
    assert deadlines == sorted(deadlines)
    assert len(armed) == 3  # two pause deadlines and the execution's timeout
