"""The host loop every runtime runs: opening order, checkpoint pieces, release rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.host import (
    CORE_EXCLUDED,
    StepInProgress,
    core_state,
    opening_events,
    rebuild_state,
    take_step,
)
from pausepoint.engine.interpreter import EngineEnv, advance, new_state
from pausepoint.engine.model import (
    Command,
    CommandKind,
    Event,
    ExecutionStatus,
    Recovered,
    RunTask,
    SetTimer,
    Started,
    TaskSucceeded,
)
from pausepoint.flow import load_flow
from pausepoint.models import TERMINAL_EVENT_TYPES

S = ExecutionStatus

TWO_STEPS = """
id: two
namespace: unit
tasks:
  - id: first
    type: python
    function: somewhere:anything
  - id: second
    type: python
    function: somewhere:anything
"""

WAITS = """
id: waits
namespace: unit
tasks:
  - id: approve
    type: pause
    pauseDuration: PT10M
"""

PURE_CHAIN = """
id: chain
namespace: unit
tasks:
  - {id: r1, type: return, format: one}
  - {id: r2, type: return, format: two}
  - {id: r3, type: return, format: three}
  - {id: said, type: log, message: done}
"""

PURE = frozenset({"return", "outputs", "log"})
AT = 1000.0


def env_of(source: str) -> EngineEnv:
    return EngineEnv(FlowIndex.build(load_flow(source).model_copy(update={"revision": 1})), {})


def fresh(env: EngineEnv) -> dict[str, Any]:
    return new_state("ex-1", env.index, inputs={}, labels={}, at=AT)


def command(kind: str, n: int = 1, **payload: Any) -> Command:
    return Command(f"cmd-{n}", CommandKind(kind), AT + n, payload=payload)


def run_tasks(actions: list[Any]) -> list[RunTask]:
    return [action for action in actions if isinstance(action, RunTask)]


# -- opening order ----------------------------------------------------------------


def test_a_queued_execution_applies_pending_commands_before_it_starts() -> None:
    pending = [command("pause", 1), command("inject", 2, message="hi")]
    events = opening_events("QUEUED", 0, AT, pending)
    assert events == [*pending, Started(AT)]


def test_an_execution_that_ran_recovers_before_it_applies_pending_commands() -> None:
    pending = [command("pause", 1)]
    assert opening_events("RUNNING", 4, AT, pending) == [Recovered(AT), *pending]
    assert opening_events("PAUSED", 2, AT, pending) == [Recovered(AT), *pending]
    # QUEUED again after a pause landed before it ran: it has logged events, so it recovers.
    assert opening_events("QUEUED", 3, AT, pending) == [Recovered(AT), *pending]


def test_a_pause_sent_while_queued_keeps_the_first_task_from_ever_running() -> None:
    env = env_of(TWO_STEPS)
    step = take_step(
        fresh(env), env, opening_events("QUEUED", 0, AT, [command("pause")]), event_seq=0
    )
    assert step.status is S.PAUSED
    assert run_tasks(step.actions) == []
    assert [result[:2] for result in step.command_results] == [("cmd-1", True)]


def test_a_cancel_pending_at_recovery_cancels_the_task_the_recovery_reissued() -> None:
    env = env_of(TWO_STEPS)
    state = fresh(env)
    started = take_step(state, env, [Started(AT)], event_seq=0)
    [run] = run_tasks(started.actions)
    stored = rebuild_state(copy.deepcopy(core_state(state)), copy.deepcopy(started.task_runs))

    step = take_step(
        stored,
        env,
        opening_events("RUNNING", started.event_seq, AT + 5, [command("cancel")]),
        event_seq=started.event_seq,
    )
    assert [r.task_run_id for r in run_tasks(step.actions)] == [run.task_run_id]
    assert step.status is S.CANCELLING
    assert not step.release


# -- rebuilding the state -------------------------------------------------------------


def test_rebuild_state_restores_what_a_checkpoint_left_out() -> None:
    env = env_of(TWO_STEPS)
    state = fresh(env)
    first = take_step(state, env, [Started(AT)], event_seq=0)
    [run] = run_tasks(first.actions)
    second = take_step(
        state, env, [TaskSucceeded(run.task_run_id, run.attempt, AT + 1, {"n": 1})], event_seq=1
    )
    stored_runs = {r["id"]: r for r in [*first.task_runs, *second.task_runs]}

    rebuilt = rebuild_state(copy.deepcopy(second.state), copy.deepcopy(list(stored_runs.values())))

    assert rebuilt == state
    assert rebuilt["outputs"]["first"] == {"n": 1}


# -- checkpoint pieces ----------------------------------------------------------------


def test_a_step_numbers_its_events_after_the_stored_ones_and_lists_what_it_changed() -> None:
    env = env_of(TWO_STEPS)
    state = fresh(env)
    step = take_step(state, env, [Started(AT), command("inject", 1, message="hi")], event_seq=7)

    assert step.first_seq == 8
    assert step.event_seq == 7 + len(step.events)
    assert [event.type for event in step.events][:1] == ["workflow.started"]
    assert "context.injected" in [event.type for event in step.events]
    assert step.status is S.RUNNING
    assert step.started_at == AT
    assert step.ended_at is None
    assert not set(CORE_EXCLUDED) & set(step.state)
    assert step.state["status"] == "RUNNING"
    [run] = run_tasks(step.actions)
    assert [r["id"] for r in step.task_runs] == [run.task_run_id]
    assert step.command_results == [("cmd-1", True, "inject applied", "RUNNING")]


def test_a_refused_command_goes_before_the_terminal_event_of_the_same_step() -> None:
    env = env_of(TWO_STEPS)
    state = fresh(env)
    [first] = run_tasks(take_step(state, env, [Started(AT)], event_seq=0).actions)
    [second] = run_tasks(
        take_step(state, env, [TaskSucceeded(first.task_run_id, 1, AT + 1)], event_seq=3).actions
    )
    step = take_step(
        state,
        env,
        [TaskSucceeded(second.task_run_id, 1, AT + 2), command("pause", 9)],
        event_seq=6,
    )
    types = [event.type for event in step.events]
    assert types[-1] in TERMINAL_EVENT_TYPES
    assert "command.rejected" in types
    assert [result[:2] for result in step.command_results] == [("cmd-9", False)]
    assert step.status is S.COMPLETED


# -- release rules ----------------------------------------------------------------------


def paused_on_a_timer() -> tuple[dict[str, Any], EngineEnv, float]:
    env = env_of(WAITS)
    state = fresh(env)
    step = take_step(state, env, [Started(AT)], event_seq=0)
    assert step.status is S.PAUSED
    [timer] = [action for action in step.actions if isinstance(action, SetTimer)]
    return state, env, timer.deadline


def test_a_finished_execution_is_released_with_no_wake_up() -> None:
    env = env_of(TWO_STEPS)
    step = take_step(fresh(env), env, [Started(AT), command("terminate", reason="x")], event_seq=0)
    assert step.status is S.TERMINATED
    assert step.release
    assert step.wake_at is None


def test_an_idle_paused_execution_is_released_until_its_next_timer() -> None:
    state, env, deadline = paused_on_a_timer()
    step = StepInProgress(state, env, [command("inject", 1, message="hi")]).finish(
        event_seq=2, release_when_paused=True, now=AT + 1
    )
    assert step.release
    assert step.wake_at == deadline


@pytest.mark.parametrize(
    ("release_when_paused", "more_events", "late"),
    [(False, False, False), (True, True, False), (True, False, True)],
    ids=["runtime-keeps-paused-ones", "more-events-waiting", "timer-due"],
)
def test_a_paused_execution_is_kept_when_it_has_more_to_do_or_the_runtime_keeps_it(
    release_when_paused: bool, more_events: bool, late: bool
) -> None:
    state, env, deadline = paused_on_a_timer()
    step = StepInProgress(state, env, [command("inject", 1, message="hi")]).finish(
        event_seq=2,
        release_when_paused=release_when_paused,
        more_events=more_events,
        now=deadline if late else AT + 1,
    )
    assert step.status is S.PAUSED
    assert not step.release
    assert step.wake_at is None


def test_a_running_execution_is_never_released() -> None:
    env = env_of(TWO_STEPS)
    step = StepInProgress(fresh(env), env, [Started(AT)]).finish(
        event_seq=0, release_when_paused=True, now=AT
    )
    assert step.status is S.RUNNING
    assert not step.release


# -- pure tasks run inline ----------------------------------------------------------------


def run_chain(limit: int) -> tuple[list[str], list[RunTask], ExecutionStatus]:
    env = env_of(PURE_CHAIN)
    step = StepInProgress(fresh(env), env, [Started(AT)], inline_types=PURE, inline_limit=limit)
    handed: list[str] = []
    while (task := step.next_inline_task()) is not None:
        handed.append(task.task_id)
        outcome: Event = TaskSucceeded(task.task_run_id, task.attempt, AT, {"value": task.task_id})
        step.add(outcome)
    done = step.finish(event_seq=0)
    return handed, run_tasks(done.actions), done.status


def test_pure_tasks_run_inline_in_order_and_the_step_checkpoints_the_whole_chain() -> None:
    handed, left, status = run_chain(64)
    assert handed == ["r1", "r2", "r3", "said"]
    assert left == []
    assert status is S.COMPLETED


def test_the_inline_chain_is_bounded_and_the_rest_becomes_actions() -> None:
    handed, left, status = run_chain(2)
    assert handed == ["r1", "r2"]
    assert [task.task_id for task in left] == ["r3"]
    assert status is S.RUNNING


def test_finishing_before_an_inline_task_reported_is_a_bug() -> None:
    env = env_of(PURE_CHAIN)
    step = StepInProgress(fresh(env), env, [Started(AT)], inline_types=PURE, inline_limit=5)
    assert step.next_inline_task() is not None
    with pytest.raises(RuntimeError):
        step.finish(event_seq=0)


def test_take_step_matches_advancing_the_events_one_by_one() -> None:
    env = env_of(TWO_STEPS)
    mine, theirs = fresh(env), fresh(env)
    events: list[Event] = [Started(AT), command("pause", 1), command("resume", 2)]
    step = take_step(mine, env, events, event_seq=0)
    produced = [advance(theirs, event, env) for event in events]
    assert mine == theirs
    assert step.events == [event for t in produced for event in t.events]
    assert step.actions == [action for t in produced for action in t.actions]
