"""Property tests: random flows under random interleavings of results, timers and commands.

The :class:`~tests.unit.engine_driver.Driver` checks the control contract's
invariants after every step (terminal is final, nothing starts while pausing,
paused or cancelling, a pause lands only with nothing in flight and at a
checkpoint, one result per command, terminate is immediate, nothing is applied
after a cancel, an attempt starts once, timers and in-flight work match the
runtime's view). These tests generate the flows and the histories.
"""

from __future__ import annotations

import copy
import itertools
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pausepoint.engine.interpreter import advance, new_state
from pausepoint.engine.model import ExecutionStatus, Started

from .engine_driver import Driver

S = ExecutionStatus

SETTINGS = settings(
    # ENGINE_PROPERTY_EXAMPLES=5000 for a long hunt; the default keeps each test ~2 s.
    max_examples=int(os.environ.get("ENGINE_PROPERTY_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- flows ------------------------------------------------------------------------------------

durations = st.sampled_from(["PT5S", "PT30S", "PT2M"])
retries = st.none() | st.fixed_dictionaries(
    {
        "type": st.sampled_from(["constant", "exponential"]),
        "maxAttempts": st.integers(1, 3),
        "interval": st.sampled_from(["PT1S", "PT10S"]),
    }
)


@st.composite
def leaf_tasks(draw: st.DrawFn) -> dict[str, Any]:
    task: dict[str, Any] = draw(
        st.sampled_from(
            [
                {"type": "log", "message": "at {{ taskrun.attemptsCount }}"},
                {"type": "return", "format": "{{ context.messages | length }}"},
            ]
        )
    )
    task = dict(task)
    retry = draw(retries)
    if retry:
        task["retry"] = retry
    if draw(st.booleans()):
        task["allowFailure"] = True
    if draw(st.integers(0, 4)) == 0:
        task["timeout"] = draw(durations)
    if draw(st.integers(0, 9)) == 0:
        task["disabled"] = True
    return task


@st.composite
def pause_tasks(draw: st.DrawFn, children: st.SearchStrategy[Any] | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"type": "pause"}
    if draw(st.booleans()):
        task["pauseDuration"] = draw(durations)
        task["behavior"] = draw(st.sampled_from(["RESUME", "WARN", "FAIL", "CANCEL"]))
    if draw(st.integers(0, 4)) == 0:
        task["timeout"] = draw(durations)
    if children is not None and draw(st.integers(0, 3)) == 0:
        task["tasks"] = draw(st.lists(children, min_size=1, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        task["onPause"] = draw(leaf_tasks())
    if draw(st.booleans()):
        task["allowFailure"] = True
    return task


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    blocks = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        st.builds(lambda tasks: {"type": "sequential", "tasks": tasks}, blocks),
        st.builds(
            lambda tasks, n: {"type": "parallel", "tasks": tasks, "concurrency": n},
            blocks,
            st.integers(0, 2),
        ),
        st.builds(
            lambda cond, then, else_: {
                "type": "if",
                "condition": cond,
                "then": then,
                "else": else_,
            },
            st.sampled_from([True, False, "{{ context.messages | length > 0 }}"]),
            blocks,
            st.lists(children, max_size=2),
        ),
        st.builds(
            lambda values, n, tasks: {
                "type": "foreach",
                "values": values,
                "concurrency": n,
                "tasks": tasks,
            },
            st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True),
            st.integers(0, 2),
            st.lists(children, min_size=1, max_size=2),
        ),
        st.builds(
            lambda value, a, b, defaults: {
                "type": "switch",
                "value": value,
                "cases": {"a": a, "1": b},
                "defaults": defaults,
            },
            st.sampled_from(["a", "z", "{{ context.messages | length }}"]),
            blocks,
            blocks,
            st.lists(children, max_size=2),
        ),
        pause_tasks(children),
    )


tasks = st.recursive(
    st.one_of(leaf_tasks(), leaf_tasks(), leaf_tasks(), pause_tasks()), containers, max_leaves=6
)
error_handlers = st.lists(leaf_tasks() | pause_tasks(), max_size=2)
finally_handlers = error_handlers


def _name(node: Any, counter: itertools.count[int]) -> Any:
    """Give every task a unique id (``k1``, ``k2``, …), depth first."""
    if isinstance(node, list):
        return [_name(item, counter) for item in node]
    named = {"id": f"k{next(counter)}", **node}
    for key in ("tasks", "then", "else", "defaults", "onPause"):
        if key in named:
            named[key] = _name(named[key], counter)
    if "cases" in named:
        named["cases"] = {k: _name(v, counter) for k, v in named["cases"].items()}
    return named


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    counter = itertools.count(1)
    flow: dict[str, Any] = {
        "id": "random",
        "tasks": _name(draw(st.lists(tasks, min_size=1, max_size=3)), counter),
    }
    errors = draw(error_handlers)
    if errors:
        flow["errors"] = _name(errors, counter)
    finally_ = draw(finally_handlers)
    if finally_:
        flow["finally"] = _name(finally_, counter)
    if draw(st.integers(0, 3)) == 0:
        flow["timeout"] = draw(st.sampled_from(["PT1M", "PT10M"]))
    return flow


# -- histories ----------------------------------------------------------------------------------

OPS = (
    "complete",
    "complete",
    "complete",
    "complete",
    "fail",
    "ack",
    "timer",
    "timer",
    "pause",
    "pause",
    "resume",
    "resume",
    "cancel",
    "terminate",
    "inject",
)
OPS_WITH_CRASHES = (*OPS, "recover")


def random_step(driver: Driver, data: st.DataObject, ops: tuple[str, ...] = OPS) -> None:
    """Feed one random, plausible event to ``driver``."""
    started = any(isinstance(step.event, Started) for step in driver.steps)
    start_now = not started and data.draw(st.booleans())
    op = "start" if start_now else data.draw(st.sampled_from(ops))
    outstanding = sorted(driver.outstanding)
    cancelling = sorted(k for k, o in driver.outstanding.items() if o.cancel_requested)
    if op == "start":
        driver.start()
    elif op == "complete" and outstanding:
        run_id = data.draw(st.sampled_from(outstanding))
        driver.complete(run_id, {"value": data.draw(st.integers(0, 9))})
    elif op == "fail" and outstanding:
        driver.fail(data.draw(st.sampled_from(outstanding)), error="random failure")
    elif op == "ack" and cancelling:
        driver.ack_cancel(data.draw(st.sampled_from(cancelling)))
    elif op == "timer" and driver.timers:
        driver.fire_next_timer()
    elif op == "pause":
        driver.pause(reason=data.draw(st.none() | st.just("look")))
    elif op == "resume":
        pause_id = data.draw(st.sampled_from([None, "bogus", *driver.open_pauses]))
        driver.resume(pause_id)
    elif op == "cancel":
        driver.cancel()
    elif op == "terminate" and data.draw(st.integers(0, 3)) == 0:
        driver.terminate("random terminate")
    elif op == "inject":
        driver.inject("note", role=data.draw(st.sampled_from(["user", "system"])))
    elif op == "recover":
        driver.recover()
    elif outstanding:
        driver.complete(outstanding[0])
    elif driver.timers:
        driver.fire_next_timer()


def replay(driver: Driver) -> None:
    """Feeding the same events to a fresh state gives the same state and the same outputs."""
    state = new_state(driver.execution_id, driver.index, inputs=driver.inputs, labels={}, at=1000.0)
    for step in driver.steps:
        transition = advance(state, copy.deepcopy(step.event), driver.env)
        assert transition.actions == step.transition.actions
        assert transition.events == step.transition.events
        assert transition.command_results == step.transition.command_results
    assert state == driver.state


# -- properties ----------------------------------------------------------------------------------


def run_random_history(flow: dict[str, Any], data: st.DataObject, ops: tuple[str, ...]) -> None:
    driver = Driver.of(flow)
    for _ in range(data.draw(st.integers(0, 40), label="steps")):
        if driver.status().is_terminal and data.draw(st.integers(0, 4)) != 0:
            break
        random_step(driver, data, ops)
    if not any(isinstance(step.event, Started) for step in driver.steps):
        driver.start()
    assert driver.drive_to_end().is_terminal
    # Whatever arrives afterwards changes nothing (checked by the driver) and is rejected.
    for kind in ("pause", "resume", "cancel", "terminate", "inject"):
        payload = {"message": "late"} if kind == "inject" else {}
        assert not driver.command(kind, **payload).applied
    driver.fire_due_timers(advance_clock_to=driver.now + 10**6)
    driver.recover()
    replay(driver)


@SETTINGS
@given(flow=flows(), data=st.data())
def test_random_histories_keep_the_control_invariants_and_always_finish(
    flow: dict[str, Any], data: st.DataObject
) -> None:
    run_random_history(flow, data, OPS)


@SETTINGS
@given(flow=flows(), data=st.data())
def test_random_histories_with_crash_recoveries_keep_the_control_invariants(
    flow: dict[str, Any], data: st.DataObject
) -> None:
    run_random_history(flow, data, OPS_WITH_CRASHES)


@SETTINGS
@given(flow=flows(), data=st.data())
def test_without_commands_every_flow_finishes_when_all_work_succeeds(
    flow: dict[str, Any], data: st.DataObject
) -> None:
    driver = Driver.of(flow)
    driver.start()
    while not driver.status().is_terminal:
        if driver.outstanding:
            run_id = data.draw(st.sampled_from(sorted(driver.outstanding)))
            driver.complete(run_id, {"value": 1})
        else:
            driver.drive_to_end()
    # No failure anywhere: only Pause expiry with FAIL/CANCEL, or a timeout, ends badly.
    assert driver.status() in (S.COMPLETED, S.WARNING, S.FAILED, S.CANCELLED, S.TIMED_OUT)
    if driver.status() is S.COMPLETED:
        assert not driver.events_of("task.failed")


@SETTINGS
@given(flow=flows(), data=st.data())
def test_a_landed_pause_holds_until_resumed(flow: dict[str, Any], data: st.DataObject) -> None:
    driver = Driver.of(flow)
    driver.start()
    for _ in range(data.draw(st.integers(0, 6))):
        if driver.outstanding:
            driver.complete(data.draw(st.sampled_from(sorted(driver.outstanding))))
    if driver.status() is not S.RUNNING:
        return
    result = driver.pause("hold")
    assert result.applied
    assert driver.status() in (S.PAUSING, S.PAUSED)
    driver.run_until_quiet()
    assert driver.status() is S.PAUSED
    # While paused: retries and pause expiries may fire, injections arrive; nothing starts.
    for _ in range(data.draw(st.integers(0, 3))):
        driver.inject("while paused")
        driver.fire_next_timer()
        driver.run_until_quiet()  # an onPause child could only be in flight if started
        if driver.status() is not S.PAUSED:
            break
    if driver.status() is S.PAUSED:
        assert result.command_id in driver.open_pauses
        assert driver.resume(result.command_id).applied
    assert driver.drive_to_end().is_terminal
