"""One runtime step can hold the event that ends an execution and a command that
arrived meanwhile: the command is refused, and the terminal event stays last."""

from __future__ import annotations

from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.interpreter import EngineEnv, advance, new_state
from pausepoint.engine.model import Command, RunTask, Started, TaskSucceeded, Transition
from pausepoint.flow import load_flow
from pausepoint.models import TERMINAL_EVENT_TYPES

FLOW = """
id: one
namespace: unit
tasks:
  - id: only
    type: python
    function: somewhere:anything
"""


def test_a_command_refused_in_the_finishing_step_goes_before_the_terminal_event() -> None:
    env = EngineEnv(FlowIndex.build(load_flow(FLOW).model_copy(update={"revision": 1})), {})
    state = new_state("e1", env.index, inputs={}, labels={}, at=0.0)
    started = advance(state, Started(1.0), env)
    [run] = [action for action in started.actions if isinstance(action, RunTask)]

    step = Transition(state)
    for event in (
        TaskSucceeded(run.task_run_id, run.attempt, 2.0, {"value": 1}),
        Command("cmd-1", "pause", 2.0),
    ):
        step.absorb(advance(state, event, env))

    types = [event.type for event in step.events]
    assert "command.rejected" in types, types
    assert types[-1] in TERMINAL_EVENT_TYPES, types
    assert sum(t in TERMINAL_EVENT_TYPES for t in types) == 1, types
    assert [r.applied for r in step.command_results] == [False]
