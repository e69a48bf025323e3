"""Kestra's core tasks on the real embedded runtime: a real SQLite file, real processes.

What the pure engine cannot show: a Sleep survives a restart, a Resume task goes
through the control plane (roles, tenancy, audit, once only), a WorkingDirectory's
tasks share real files, a Labels task's labels are searchable, a disabled flow
starts nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pausepoint.config import Settings
from pausepoint.errors import Conflict
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings

TIMEOUT = 20.0
VALIDS = Path(__file__).parents[1] / "kestra" / "valids"


def paused(view: ExecutionView) -> bool:
    return view.state == "PAUSED"


async def test_sleep_survives_a_restart_and_the_flow_goes_on(db_path: Path) -> None:
    settings = fast_settings(db_path)
    async with Engine(settings) as engine:
        await engine.put_flow(
            """
id: nap
namespace: kestra.tasks
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: awake
"""
        )
        started = await engine.start_execution("kestra.tasks", "nap")
        await engine.wait(
            started.id,
            until=lambda v: any(r.task_id == "sleep" and r.state == "RUNNING" for r in v.task_runs),
            timeout=TIMEOUT,
        )
    # The process is gone; the timer is in the store. A new one takes it up.
    async with Engine(fast_settings(db_path), serve=True) as engine:
        view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error
    assert [(r.task_id, r.state) for r in view.task_runs] == [
        ("sleep", "SUCCESS"),
        ("after", "SUCCESS"),
    ]


WAITER = """
id: waiter
namespace: kestra.tasks
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: note
        type: STRING
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.gate.onResume.note }}"
"""

RESUMER = """
id: resumer
namespace: kestra.tasks
inputs:
  - id: target
    type: STRING
tasks:
  - id: resume
    type: io.kestra.plugin.core.execution.Resume
    executionId: "{{ inputs.target }}"
    inputs:
      note: "from {{ flow.id }}"
"""


async def test_resume_task_resumes_another_execution_through_the_control_plane(
    engine: Engine,
) -> None:
    await engine.put_flow(WAITER)
    await engine.put_flow(RESUMER)
    waiting = await engine.start_execution("kestra.tasks", "waiter")
    await engine.wait(waiting.id, until=paused, timeout=TIMEOUT)

    resumer = await engine.start_execution("kestra.tasks", "resumer", inputs={"target": waiting.id})
    view = await engine.wait(resumer.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error
    assert view.task_runs[0].outputs == {"executionId": waiting.id, "state": "RUNNING"}

    resumed = await engine.wait(waiting.id, timeout=TIMEOUT)
    assert resumed.state == "COMPLETED", resumed.error
    assert (resumed.task_runs[0].outputs or {})["onResume"] == {"note": "from resumer"}
    # The audit trail names the flow that acted, as it names an API caller.
    (command,) = await engine.commands(waiting.id)
    assert command.idempotency_key is not None
    assert (command.kind, command.actor, command.status) == (
        "resume",
        "flow:kestra.tasks.resumer",
        "applied",
    )


async def test_resume_task_fails_clearly_for_a_running_or_unknown_execution(
    engine: Engine,
) -> None:
    await engine.put_flow(RESUMER)
    view = await engine.wait(
        (await engine.start_execution("kestra.tasks", "resumer", inputs={"target": "nope"})).id,
        timeout=TIMEOUT,
    )
    assert view.state == "FAILED"
    assert view.task_runs[0].error == "resume task: execution nope not found"

    await engine.put_flow(WAITER)
    done = await engine.start_execution("kestra.tasks", "waiter")
    await engine.wait(done.id, until=paused, timeout=TIMEOUT)
    await engine.resume(done.id, inputs={"note": "by hand"})
    await engine.wait(done.id, timeout=TIMEOUT)
    view = await engine.wait(
        (await engine.start_execution("kestra.tasks", "resumer", inputs={"target": done.id})).id,
        timeout=TIMEOUT,
    )
    assert view.state == "FAILED"
    assert view.task_runs[0].error == f"resume task: cannot resume completed execution {done.id}"


async def test_resume_task_cannot_reach_another_organizations_execution(
    settings: Settings,
) -> None:
    async with Engine(settings) as engine:
        other = engine.as_org("globex")
        await other.put_flow(WAITER)
        theirs = await other.start_execution("kestra.tasks", "waiter")
        await other.wait(theirs.id, until=paused, timeout=TIMEOUT)
        await engine.put_flow(RESUMER)
        mine = await engine.start_execution("kestra.tasks", "resumer", inputs={"target": theirs.id})
        view = await engine.wait(mine.id, timeout=TIMEOUT)
        assert view.state == "FAILED"
        assert view.task_runs[0].error == f"resume task: execution {theirs.id} not found"
        assert (await other.execution(theirs.id)).state == "PAUSED"


async def test_working_directory_tasks_share_files(db_path: Path, tmp_path: Path) -> None:
    settings = fast_settings(db_path, shell_enabled=True, work_dir=str(tmp_path / "work"))
    async with Engine(settings) as engine:
        await engine.put_flow(
            """
id: workdir
namespace: kestra.tasks
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      greeting.txt: "hello {{ flow.id }}"
    tasks:
      - id: write
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - cat greeting.txt > copy.txt
          - echo " and more" >> copy.txt
      - id: read
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - cat copy.txt
"""
        )
        first = await engine.wait(
            (await engine.start_execution("kestra.tasks", "workdir")).id, timeout=TIMEOUT
        )
        second = await engine.wait(
            (await engine.start_execution("kestra.tasks", "workdir")).id, timeout=TIMEOUT
        )
    for view in (first, second):
        assert view.state == "COMPLETED", view.error
        read = next(run for run in view.task_runs if run.task_id == "read")
        assert (read.outputs or {})["stdout"] == "hello workdir and more\n"
    # Each execution had a directory of its own, removed when it ended.
    assert list((tmp_path / "work").iterdir()) == []


async def test_labels_task_labels_are_searchable(engine: Engine) -> None:
    await engine.put_flow(
        """
id: tagger
namespace: kestra.tasks
labels:
  team: data
tasks:
  - id: tag
    type: io.kestra.plugin.core.execution.Labels
    labels:
      - key: stage
        value: "{{ flow.id }}-done"
"""
    )
    view = await engine.wait(
        (await engine.start_execution("kestra.tasks", "tagger")).id, timeout=TIMEOUT
    )
    assert view.state == "COMPLETED", view.error
    assert view.labels == {"team": "data", "stage": "tagger-done"}
    found = await engine.list_executions(labels={"stage": "tagger-done"})
    assert [record.id for record in found] == [view.id]


async def test_a_disabled_flow_starts_nothing(engine: Engine) -> None:
    await engine.put_flow(
        """
id: off
namespace: kestra.tasks
disabled: true
tasks:
  - id: l
    type: io.kestra.plugin.core.log.Log
    message: x
"""
    )
    with pytest.raises(Conflict, match=r"flow kestra\.tasks\.off is disabled"):
        await engine.start_execution("kestra.tasks", "off")
    assert await engine.list_executions(flow_id="off") == []


async def test_script_tasks_take_kestras_file_and_command_properties(
    db_path: Path, tmp_path: Path
) -> None:
    settings = fast_settings(db_path, shell_enabled=True, work_dir=str(tmp_path / "work"))
    async with Engine(settings) as engine:
        await engine.put_flow(
            """
id: script
namespace: kestra.tasks
tasks:
  - id: report
    type: io.kestra.plugin.scripts.shell.Script
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    containerImage: ubuntu:latest
    beforeCommands:
      - echo prepared > before.txt
    inputFiles:
      data.csv: "a,b\\n1,2\\n"
    outputFiles:
      - "*.txt"
    script: |
      wc -l < data.csv | tr -d ' ' | tee lines.txt
      cat before.txt
"""
        )
        view = await engine.wait(
            (await engine.start_execution("kestra.tasks", "script")).id, timeout=TIMEOUT
        )
    assert view.state == "COMPLETED", view.error
    outputs = view.task_runs[0].outputs or {}
    assert outputs["stdout"] == "2\nprepared\n"
    files = outputs["outputFiles"]
    assert sorted(files) == ["before.txt", "lines.txt"]
    assert files["lines.txt"] == str(tmp_path / "work" / view.id / "t1" / "lines.txt")


async def test_kestras_wait_and_sleep_flows_sleep_then_run_their_shell_task(
    db_path: Path, tmp_path: Path
) -> None:
    """SequentialTest#waitTaskTest (wait-task-flow.yaml) and SleepTest#sleepTaskTest
    (sleep-task-flow.yaml), copied unchanged: each sleeps ten seconds (both at once
    here), then its shell task runs, and the execution succeeds."""
    settings = fast_settings(db_path, shell_enabled=True, work_dir=str(tmp_path / "work"))
    async with Engine(settings) as engine:
        started = []
        for name in ("wait-task-flow.yaml", "sleep-task-flow.yaml"):
            record = await engine.put_flow_file(VALIDS / name)
            started.append(await engine.start_execution(record.namespace, record.flow_id))
        for execution in started:
            view = await engine.wait(execution.id, timeout=TIMEOUT + 10)
            assert view.state == "COMPLETED"
            assert [(run.task_id, run.state) for run in view.task_runs] == [
                ("wait" if view.flow_id == "wait-task-flow" else "sleep", "SUCCESS"),
                ("next-task", "SUCCESS"),
            ]
            outputs = view.task_runs[1].outputs or {}
            assert outputs["exitCode"] == 0
            assert "Wait task completed" in outputs["stdout"]
