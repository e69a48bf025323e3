"""The engine's state as stored: timers record what they act on, and older checkpoints still run."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pausepoint.states
from pausepoint.client import calls
from pausepoint.engine.model import Command, CommandKind, ExecutionStatus
from pausepoint.engine.state import read_timer
from pausepoint.models import ExecutionView
from pausepoint.states import TERMINAL_STATES, ExecutionState

from .engine_driver import Driver

S = ExecutionStatus

FLOW = """
id: timed
timeout: PT1H
tasks:
  - id: fan
    type: parallel
    tasks:
      - id: flaky
        type: log
        message: flaky
        retry: {maxAttempts: 2, interval: PT1S}
      - {id: slow, type: log, message: slow, timeout: PT5S}
      - {id: approve, type: pause, pauseDuration: PT10M, timeout: PT20M}
"""

# How a checkpoint written before timers recorded their target holds them; the
# oldest form keeps only the deadline.
OLDER_FORMS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "current": lambda timer: timer,
    "without target": lambda timer: {"deadline": timer["deadline"], "kind": timer["kind"]},
    "deadline only": lambda timer: {"deadline": timer["deadline"]},
}


def started() -> Driver:
    driver = Driver.of(FLOW)
    driver.start()
    driver.fail("flaky")  # arms its retry timer
    return driver


def stored_as(driver: Driver, form: str) -> None:
    timers: dict[str, Any] = driver.state["timers"]
    for key, timer in list(timers.items()):
        timers[key] = OLDER_FORMS[form](timer)


def test_every_timer_records_its_kind_and_what_it_acts_on() -> None:
    driver = started()
    flaky = driver.run_of("flaky")["id"]
    slow = driver.run_of("slow")["id"]
    pause = driver.task_pause_id("approve")
    kinds = {
        key: {k: v for k, v in timer.items() if k != "deadline"}
        for key, timer in driver.state["timers"].items()
    }
    assert kinds == {
        "execution": {"kind": "execution"},
        f"retry:{flaky}": {"kind": "retry", "task_run_id": flaky},
        f"timeout:{slow}": {"kind": "timeout", "task_run_id": slow},
        f"pause:{pause}": {"kind": "pause", "pause_id": pause},
        f"ptimeout:{pause}": {"kind": "pause_timeout", "pause_id": pause},
    }


@pytest.mark.parametrize("form", OLDER_FORMS)
def test_a_retry_timer_retries_its_run(form: str) -> None:
    driver = started()
    stored_as(driver, form)
    flaky = driver.run_of("flaky")["id"]
    step = driver.fire(f"retry:{flaky}")
    assert [(a.task_run_id, a.attempt) for a in step.run_tasks] == [(flaky, 2)]


@pytest.mark.parametrize("form", OLDER_FORMS)
def test_a_task_timeout_timer_cancels_its_run(form: str) -> None:
    driver = started()
    stored_as(driver, form)
    slow = driver.run_of("slow")["id"]
    driver.fire(f"timeout:{slow}")
    assert driver.run_of("slow")["timing_out"] is True
    driver.ack_cancel("slow")
    assert "timed out after PT5S" in driver.run_of("slow")["error"]


@pytest.mark.parametrize("form", OLDER_FORMS)
def test_a_pause_duration_timer_ends_its_pause(form: str) -> None:
    driver = started()
    stored_as(driver, form)
    pause = driver.task_pause_id("approve")
    driver.fire(f"pause:{pause}")
    assert driver.run_of("approve")["state"] == "SUCCESS"
    assert pause not in driver.state["pauses"]


@pytest.mark.parametrize("form", OLDER_FORMS)
def test_a_pause_timeout_timer_fails_its_pause(form: str) -> None:
    driver = started()
    stored_as(driver, form)
    pause = driver.task_pause_id("approve")
    driver.fire(f"ptimeout:{pause}")
    assert driver.run_of("approve")["state"] == "FAILED"


@pytest.mark.parametrize("form", OLDER_FORMS)
def test_the_execution_timer_times_the_execution_out(form: str) -> None:
    driver = started()
    stored_as(driver, form)
    driver.fire("execution")
    assert driver.status() is S.CANCELLING
    assert driver.state["stop"] is not None
    assert driver.state["stop"]["kind"] == "timeout"


def test_read_timer_leaves_a_current_timer_as_it_is() -> None:
    timer: Any = {"deadline": 5.0, "kind": "retry", "task_run_id": "t7"}
    assert read_timer("retry:t7", timer) is timer


# -- one definition of execution states and command kinds ---------------------------------


def test_the_states_module_imports_nothing_of_pausepoint() -> None:
    tree = ast.parse(Path(pausepoint.states.__file__).read_text())
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name and name.startswith("pausepoint")]


def test_engine_models_and_client_share_one_definition_of_terminal_states() -> None:
    assert ExecutionStatus is ExecutionState
    assert calls.TERMINAL_STATES is TERMINAL_STATES
    assert {state for state in ExecutionState if state.is_terminal} == TERMINAL_STATES
    assert "TIMED_OUT" in TERMINAL_STATES  # stored and wire states are plain strings


@pytest.mark.parametrize("state", list(ExecutionState))
def test_an_execution_view_is_terminal_exactly_in_the_terminal_states(
    state: ExecutionState,
) -> None:
    view = ExecutionView(
        id="ex",
        namespace="n",
        flow_id="f",
        flow_revision=1,
        state=str(state.value),
        inputs={},
        labels={},
        created_at="2042-01-01T00:00:00Z",
    )
    assert view.is_terminal is state.is_terminal


def test_a_command_kind_given_as_its_stored_value_becomes_the_enum_member() -> None:
    command = Command("c1", "resume", 1.0)
    assert command.kind is CommandKind.RESUME
    assert command.to_dict()["kind"] == "resume"
    assert type(command.to_dict()["kind"]) is str


def test_an_unknown_command_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown command kind 'hold'"):
        Command("c1", "hold", 1.0)  # type: ignore[arg-type]
