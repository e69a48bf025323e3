"""The storm's invariant checks flag what they claim to (so a green storm means something)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pausepoint.models import CommandView, EventView, ExecutionView, TaskRunView
from tests.chaos.checks import Accepted, BodyRun, History, check_history
from tests.chaos.flows import sequential

EXECUTION = "e1"
KILLED_PID, LIVE_PID = 100, 200
AT = "2026-01-01T00:00:00.000Z"


def event(number: int, type_: str, **data: Any) -> EventView:
    return EventView(execution_id=EXECUTION, seq=number, type=type_, at=AT, data=data)


def clean_history() -> History:
    """sequential_5, completed; t2's body ran twice because its first worker was killed."""
    spec = sequential(5)
    events = [event(1, "workflow.started", inputs={})]
    runs, bodies = [], {}
    prev = None
    for i, task_id in enumerate(spec.task_ids, start=1):
        run_id, token = f"t{i}", f"tok{i}"
        outputs = {"label": task_id, "token": token, "prev": prev, "attempt": 1}
        events.append(
            event(
                len(events) + 1,
                "task.started",
                task_run_id=run_id,
                task_id=task_id,
                attempt=1,
                type="python",
            )
        )
        bodies[f"{EXECUTION}/{run_id}"] = [BodyRun(f"{EXECUTION}/{run_id}", 1, token, LIVE_PID)]
        if i == 2:
            events.append(event(len(events) + 1, "workflow.recovered", rerun=[run_id]))
            bodies[f"{EXECUTION}/{run_id}"].insert(
                0, BodyRun(f"{EXECUTION}/{run_id}", 1, "lost", KILLED_PID)
            )
        events.append(
            event(
                len(events) + 1,
                "task.completed",
                state="SUCCESS",
                logs=[],
                task_run_id=run_id,
                task_id=task_id,
                outputs=outputs,
            )
        )
        runs.append(
            TaskRunView(
                id=run_id,
                task_id=task_id,
                type="python",
                state="SUCCESS",
                attempt=1,
                outputs=outputs,
            )
        )
        prev = token
    events.append(
        event(
            len(events) + 1,
            "context.injected",
            seq=1,
            role="user",
            message="hi",
            by="chaos",
            at=AT,
            command_id="c1",
        )
    )
    events.append(event(len(events) + 1, "workflow.completed", state="COMPLETED", outputs={}))
    view = ExecutionView(
        id=EXECUTION,
        namespace="chaos",
        flow_id=spec.flow_id,
        flow_revision=1,
        state="COMPLETED",
        inputs={},
        labels={},
        created_at=AT,
        task_runs=runs,
        context=[{"seq": 1, "role": "user", "message": "hi", "by": "chaos", "at": AT}],
    )
    command = CommandView(
        id="c1",
        seq=1,
        kind="inject",
        actor="chaos",
        reason=None,
        payload={"message": "hi", "role": "user"},
        idempotency_key=None,
        request_id=None,
        status="applied",
        message="inject applied",
        state_before="RUNNING",
        state_after="RUNNING",
        created_at=AT,
        applied_at=AT,
    )
    return History(
        spec=spec,
        inputs={},
        view=view,
        events=events,
        commands=[command],
        accepted=[Accepted("c1", "inject", EXECUTION, command.payload)],
        bodies=bodies,
    )


def test_a_clean_history_passes() -> None:
    assert check_history(clean_history(), {KILLED_PID}) == []


def _changed_output(h: History) -> None:
    h.view.task_runs[2].outputs = {**(h.view.task_runs[2].outputs or {}), "token": "other"}


def _gap(h: History) -> None:
    del h.events[3]


def _pending(h: History) -> None:
    h.commands[0] = h.commands[0].model_copy(update={"status": "pending"})


def _unsent(h: History) -> None:
    h.accepted.clear()


def _rerun_in_live_worker(h: History) -> None:
    h.bodies[f"{EXECUTION}/t4"].insert(0, BodyRun(f"{EXECUTION}/t4", 1, "x", LIVE_PID + 1))


def _rerun_after_completion(h: History) -> None:
    h.bodies[f"{EXECUTION}/t3"].append(BodyRun(f"{EXECUTION}/t3", 1, "late", KILLED_PID))
    h.events.insert(5, event(0, "workflow.recovered", rerun=["t3"]))
    for seq, e in enumerate(h.events, start=1):
        e.seq = seq


def _second_completion(h: History) -> None:
    h.events.insert(-1, h.events[2].model_copy(update={"seq": 0}))
    for seq, e in enumerate(h.events, start=1):
        e.seq = seq


def _wrong_state(h: History) -> None:
    h.view.state = "CANCELLED"


def _double_inject(h: History) -> None:
    h.view.context.append(h.view.context[0])


@pytest.mark.parametrize(
    "tamper",
    [
        _changed_output,
        _gap,
        _pending,
        _unsent,
        _rerun_in_live_worker,
        _rerun_after_completion,
        _second_completion,
        _wrong_state,
        _double_inject,
    ],
)
def test_each_broken_invariant_is_reported(tamper: Any) -> None:
    history = copy.deepcopy(clean_history())
    tamper(history)
    assert check_history(history, {KILLED_PID}), f"{tamper.__name__} went unnoticed"
