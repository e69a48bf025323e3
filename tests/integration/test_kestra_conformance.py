"""Kestra's own Pause test flows run unchanged, with the outcomes Kestra's PauseTest expects.

The flows live in shared/conformance/kestra/ (see its README for the table of
outcomes). Task runs are compared by task id and order, not by Kestra's run
numbering.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pausepoint.errors import InvalidInput
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from tests.conftest import SHARED

KESTRA = SHARED / "conformance" / "kestra"
NAMESPACE = "io.kestra.tests"
TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(
    not (KESTRA / "README.md").is_file(), reason=f"Kestra conformance flows not found in {KESTRA}"
)


def paused(view: ExecutionView) -> bool:
    return view.state == "PAUSED"


def task_ids(view: ExecutionView) -> list[str]:
    return [run.task_id for run in view.task_runs]


def runs(view: ExecutionView) -> list[tuple[str, str]]:
    return [(run.task_id, run.state) for run in view.task_runs]


async def start(engine: Engine, file_name: str, **inputs: object) -> str:
    record = await engine.put_flow_file(KESTRA / file_name)
    assert record.namespace == NAMESPACE
    execution = await engine.start_execution(NAMESPACE, record.flow_id, inputs=inputs)
    return execution.id


async def times_paused(engine: Engine, execution_id: str, task_id: str) -> int:
    return sum(
        1
        for event in await engine.events(execution_id)
        if event.type == "task.paused" and event.data["task_id"] == task_id
    )


def test_every_conformance_flow_is_covered() -> None:
    covered = {
        "each-parallel-pause.yml",
        "pause-delay-from-input.yaml",
        "pause-delay.yaml",
        "pause-timeout.yaml",
        "pause.yaml",
        "pause_no_tasks.yaml",
        "pause_on_resume.yaml",
        "pause_on_resume_optional.yaml",
    }
    assert {path.name for path in Path(KESTRA).glob("*.y*ml")} == covered


async def test_pause_waits_then_runs_its_tasks_and_the_rest(engine: Engine) -> None:
    execution_id = await start(engine, "pause.yaml")

    view = await engine.wait(execution_id, until=paused, timeout=TIMEOUT)
    assert runs(view) == [("pause", "PAUSED")]

    await engine.resume(execution_id)
    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED", view.error
    assert task_ids(view) == ["pause", "subtask", "last"]
    assert all(run.state == "SUCCESS" for run in view.task_runs)
    assert "failed-echo" not in task_ids(view)
    assert (view.task_run("last").outputs or {})["value"].startswith("last > ")


async def test_pause_without_tasks_waits_then_completes(engine: Engine) -> None:
    execution_id = await start(engine, "pause_no_tasks.yaml")

    view = await engine.wait(execution_id, until=paused, timeout=TIMEOUT)
    assert runs(view) == [("pause", "PAUSED")]

    await engine.resume(execution_id)
    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED", view.error
    assert runs(view) == [("pause", "SUCCESS"), ("last", "SUCCESS")]
    assert view.task_run("last").outputs == {"value": "last"}


@pytest.mark.parametrize(
    ("file_name", "inputs"),
    [
        ("pause-delay.yaml", {}),
        ("pause-delay-from-input.yaml", {}),
        ("pause-delay-from-input.yaml", {"delay": "PT0.5S"}),
    ],
)
async def test_pause_delay_resumes_by_itself(
    engine: Engine, file_name: str, inputs: dict[str, object]
) -> None:
    execution_id = await start(engine, file_name, **inputs)

    view = await engine.wait(execution_id, until=paused, timeout=TIMEOUT)
    assert runs(view) == [("pause", "PAUSED")]
    [point] = view.pause_points
    assert point.deadline is not None

    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED", view.error
    assert task_ids(view) == ["pause", "subtask", "last"]
    assert all(run.state == "SUCCESS" for run in view.task_runs)
    assert (view.task_run("pause").outputs or {})["resumed"]["by"] == "timer"
    assert await times_paused(engine, execution_id, "pause") == 1


async def test_pause_delay_from_input_takes_a_duration_input(engine: Engine) -> None:
    record = await engine.put_flow_file(KESTRA / "pause-delay-from-input.yaml")
    execution = await engine.start_execution(NAMESPACE, record.flow_id)
    assert execution.inputs == {"delay": "PT1S"}


async def test_pause_timeout_fails_the_pause_and_the_execution(engine: Engine) -> None:
    execution_id = await start(engine, "pause-timeout.yaml")

    view = await engine.wait(execution_id, until=paused, timeout=TIMEOUT)
    assert runs(view) == [("pause", "PAUSED")]

    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "FAILED"
    assert runs(view) == [("pause", "FAILED")]
    assert "ko" not in task_ids(view) and "last" not in task_ids(view)
    assert view.error is not None and "pause" in view.error


async def test_pause_on_resume_passes_the_inputs_on(engine: Engine) -> None:
    execution_id = await start(engine, "pause_on_resume.yaml")
    view = await engine.wait(execution_id, until=paused, timeout=TIMEOUT)
    [point] = view.pause_points
    schema = point.on_resume_schema or {}
    assert schema["required"] == ["asked"]

    await engine.resume(execution_id, inputs={"asked": "restarted"})
    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED", view.error
    assert task_ids(view) == ["pause", "last"]
    values = (view.task_run("last").outputs or {})["values"]
    assert values["asked"] == "restarted"
    assert values.get("data") in (None, "")


async def test_pause_on_resume_refuses_a_resume_without_the_required_input(
    engine: Engine,
) -> None:
    execution_id = await start(engine, "pause_on_resume.yaml")
    await engine.wait(execution_id, until=paused, timeout=TIMEOUT)

    with pytest.raises(InvalidInput) as refused:
        await engine.resume(execution_id)

    assert "asked" in refused.value.message
    assert any(error.loc[-1] == "asked" for error in refused.value.errors)
    view = await engine.execution(execution_id)
    assert view.state == "PAUSED"
    assert runs(view) == [("pause", "PAUSED")]
    assert await engine.commands(execution_id) == []

    await engine.resume(execution_id, inputs={"asked": "second try"})
    view = await engine.wait(execution_id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    assert (view.task_run("last").outputs or {})["values"]["asked"] == "second try"


async def test_pause_on_resume_optional_defaults_with_pebble_coalesce(engine: Engine) -> None:
    execution_id = await start(engine, "pause_on_resume_optional.yaml")
    await engine.wait(execution_id, until=paused, timeout=TIMEOUT)

    await engine.resume(execution_id)
    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED", view.error
    assert task_ids(view) == ["pause", "last"]
    assert (view.task_run("last").outputs or {})["values"] == {"asked": "MISSING"}


async def test_each_parallel_pause_pauses_every_branch_then_logs(engine: Engine) -> None:
    execution_id = await start(engine, "each-parallel-pause.yml")

    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED", view.error
    counts = Counter(run.task_id for run in view.task_runs if run.type != "iteration")
    assert counts == {"each": 1, "pause": 3, "log": 3}
    assert all(run.state == "SUCCESS" for run in view.task_runs)
    iterations = [run for run in view.task_runs if run.type == "iteration"]
    assert sorted(run.value for run in iterations) == ["tata", "titi", "toto"]
    assert await times_paused(engine, execution_id, "pause") == 3
    # Each branch's log runs after its own pause ended, inside that branch.
    by_id = {run.id: run for run in view.task_runs}
    for log in (run for run in view.task_runs if run.task_id == "log"):
        parent = by_id[log.parent or ""]
        assert parent.task_id == "pause"
        assert log.started_at is not None and parent.started_at is not None
        assert log.value == parent.value
