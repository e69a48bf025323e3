"""The pure engine carries a command's traceparent into the events it causes."""

from __future__ import annotations

from typing import Any

from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.interpreter import EngineEnv, advance, new_state
from pausepoint.engine.model import (
    Command,
    Event,
    LogEvent,
    RunTask,
    Started,
    TaskSucceeded,
    TimerFired,
)
from pausepoint.flow import load_flow

STARTED_IN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PAUSED_BY = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"

FLOW = """
id: traced
namespace: unit.trace
timeout: PT1M
tasks:
  - id: work
    type: python
    function: asyncio:sleep
    kwargs:
      delay: 0
  - id: more
    type: python
    function: asyncio:sleep
    kwargs:
      delay: 0
"""


class Run:
    """One execution fed straight through ``advance``."""

    def __init__(self, traceparent: str | None) -> None:
        index = FlowIndex.build(load_flow(FLOW))
        self.env = EngineEnv(index, {})
        self.state: Any = new_state(
            "ex-1", index, inputs={}, labels={}, at=1.0, traceparent=traceparent
        )
        self.tasks: list[RunTask] = []

    def feed(self, event: Event) -> list[LogEvent]:
        transition = advance(self.state, event, self.env)
        self.state = transition.state
        self.tasks += [a for a in transition.actions if isinstance(a, RunTask)]
        return transition.events

    def finish_task(self, at: float) -> list[LogEvent]:
        task = self.tasks.pop(0)
        return self.feed(TaskSucceeded(task.task_run_id, task.attempt, at))


def traces(events: list[LogEvent]) -> dict[str, Any]:
    return {event.type: event.data.get("traceparent") for event in events}


def test_a_pause_marks_the_events_it_causes_also_when_it_lands_a_step_later() -> None:
    run = Run(STARTED_IN)
    assert set(traces(run.feed(Started(2.0))).values()) == {STARTED_IN}
    pausing = run.feed(Command("c1", "pause", 3.0, traceparent=PAUSED_BY))
    assert traces(pausing)["workflow.pausing"] == PAUSED_BY
    landed = run.finish_task(4.0)  # the step that lands the pause is a task's end
    assert traces(landed)["workflow.paused"] == PAUSED_BY
    assert traces(landed)["task.completed"] == STARTED_IN


def test_an_untraced_execution_writes_no_traceparent_and_a_timer_borrows_none() -> None:
    run = Run(None)
    run.feed(Started(2.0))
    cancelling = run.feed(Command("c1", "cancel", 3.0, traceparent=PAUSED_BY))
    assert traces(cancelling)["workflow.cancelling"] == PAUSED_BY
    assert traces(run.finish_task(4.0))["workflow.cancelled"] == PAUSED_BY

    timed = Run(None)
    events = timed.feed(Started(2.0))
    events += timed.feed(TimerFired("execution", 100.0))
    events += timed.finish_task(101.0)
    assert "workflow.timed_out" in traces(events)
    assert all("traceparent" not in event.data for event in events)


def test_a_rejected_command_says_whose_it_was() -> None:
    run = Run(STARTED_IN)
    run.feed(Started(2.0))
    events = run.feed(Command("c1", "resume", 3.0, payload={"inputs": {}}, traceparent=PAUSED_BY))
    rejected = [event for event in events if event.type == "command.rejected"]
    assert rejected and rejected[0].data["traceparent"] == PAUSED_BY
