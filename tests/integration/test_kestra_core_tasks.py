"""Kestra's own core test flows run unchanged, to the outcomes Kestra's Java tests state.

The flows are byte-for-byte copies of kestra-io/kestra
core/src/test/resources/flows/valids/ (Apache-2.0), kept in tests/kestra/valids/.
Each test names the Kestra test (class#method) it mirrors and asserts only what that
test asserts, in pausepoint's state names: Kestra's execution SUCCESS is COMPLETED,
KILLED is TERMINATED, and a KILLED task run is CANCELLED. The table is
tests/kestra/OUTCOMES.md.
"""

from __future__ import annotations

from pathlib import Path

from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
NAMESPACE = "io.kestra.tests"
TIMEOUT = 30.0
CORRELATION_ID = "system.correlationId"


async def run(engine: Engine, file_name: str, **inputs: object) -> ExecutionView:
    """Store the flow file, start it with the inputs and wait for its end."""
    record = await engine.put_flow_file(VALIDS / file_name)
    execution = await engine.start_execution(NAMESPACE, record.flow_id, inputs=inputs)
    return await engine.wait(execution.id, timeout=TIMEOUT)


def state_of(view: ExecutionView, task_id: str) -> str:
    """The state of the first run of a task, as Kestra's findTaskRunsByTaskId(..).getFirst()."""
    return next(run.state for run in view.task_runs if run.task_id == task_id)


def task_ids(view: ExecutionView) -> list[str]:
    return [run.task_id for run in view.task_runs]


async def test_fail_on_condition_fails_when_the_condition_holds(engine: Engine) -> None:
    """Mirrors FailTest#failOnCondition: two task runs, 'fail' FAILED, execution FAILED."""
    view = await run(engine, "fail-on-condition.yaml", param="fail")

    assert view.state == "FAILED", view.error
    assert task_ids(view) == ["before", "fail"]
    assert state_of(view, "fail") == "FAILED"


async def test_fail_on_condition_passes_when_the_condition_is_false(engine: Engine) -> None:
    """Mirrors FailTest#dontFailOnCondition: three task runs, 'fail' SUCCESS, execution SUCCESS."""
    view = await run(engine, "fail-on-condition.yaml", param="success")

    assert view.state == "COMPLETED", view.error
    assert task_ids(view) == ["before", "fail", "after"]
    assert state_of(view, "fail") == "SUCCESS"


async def test_fail_on_switch_fails_the_switch_without_a_matching_case(engine: Engine) -> None:
    """Mirrors FailTest#failOnSwitch: one task run, 'switch' FAILED, execution FAILED.

    The value "fail" matches no case and the Switch has no defaults, so the Switch
    itself fails; the Fail task under the 'notexist' case never runs.
    """
    view = await run(engine, "fail-on-switch.yaml", param="fail")

    assert view.state == "FAILED", view.error
    assert task_ids(view) == ["switch"]
    assert state_of(view, "switch") == "FAILED"


async def test_exit_ends_the_execution_in_warning(engine: Engine) -> None:
    """Mirrors ExitTest#shouldExitTheExecution: execution WARNING, two task runs, the first WARNING.

    Kestra's two runs are 'if' and 'exit'; 'end' never runs.
    """
    view = await run(engine, "exit.yaml")

    assert view.state == "WARNING", view.error
    assert task_ids(view) == ["if", "exit"]
    assert state_of(view, "if") == "WARNING"


async def test_exit_killed_kills_the_execution_and_its_runs(engine: Engine) -> None:
    """Mirrors ExitTest#shouldExitAndKillTheExecution: execution KILLED, two runs, both KILLED.

    Kestra's KILLED execution is pausepoint's TERMINATED; a killed task run is CANCELLED.
    """
    view = await run(engine, "exit-killed.yaml")

    assert view.state == "TERMINATED", view.error
    assert task_ids(view) == ["if", "exit"]
    assert [run.state for run in view.task_runs] == ["CANCELLED", "CANCELLED"]


async def test_dag_runs_every_task_and_succeeds(engine: Engine) -> None:
    """Mirrors DagTest#dag: execution SUCCESS with seven task runs.

    Kestra's count of seven includes its own bookkeeping runs; this asserts the
    tasks instead: the Dag and each of its five tasks ran once and succeeded.
    """
    view = await run(engine, "dag.yaml")

    assert view.state == "COMPLETED", view.error
    assert sorted(task_ids(view)) == ["dag", "task1", "task2", "task3", "task4", "task5"]
    assert {run.state for run in view.task_runs} == {"SUCCESS"}


async def test_waitfor_loops_until_the_condition_is_false(engine: Engine) -> None:
    """Mirrors WaitForCaseTest#waitfor: execution SUCCESS; the first task run has outputs.

    Kestra's first task run is the WaitFor's own, whose outputs (its iteration
    count) are not null.
    """
    view = await run(engine, "waitfor.yaml")

    assert view.state == "COMPLETED", view.error
    assert view.task_runs[0].task_id == "waitfor"
    assert view.task_runs[0].outputs


async def test_waitfor_fails_when_max_iterations_is_reached(engine: Engine) -> None:
    """Mirrors WaitForCaseTest#waitforMaxIterations: execution FAILED (failOnMaxReached)."""
    view = await run(engine, "waitfor-max-iterations.yaml")

    assert view.state == "FAILED", view.error


async def test_waitfor_without_failing_on_max_succeeds(engine: Engine) -> None:
    """Mirrors WaitForCaseTest#waitforNoSuccess: execution SUCCESS."""
    view = await run(engine, "waitfor-no-success.yaml")

    assert view.state == "COMPLETED", view.error


async def test_labels_task_keeps_the_last_value_of_a_repeated_key(engine: Engine) -> None:
    """Mirrors RuntimeLabelsTest#updateGetsDeduplicated: two task runs, execution SUCCESS,
    labels exactly the correlation id, fromStringKey=value2 and fromListKey=value2.

    Kestra's correlation id label is its own system label; pausepoint is not asked
    to add it, so it is left out of the comparison when present.
    """
    view = await run(engine, "labels-update-task-deduplicate.yml")

    assert view.state == "COMPLETED", view.error
    assert task_ids(view) == ["from-string", "from-list"]
    labels = {key: value for key, value in view.labels.items() if key != CORRELATION_ID}
    assert labels == {"fromStringKey": "value2", "fromListKey": "value2"}


async def test_waitfor_fails_when_max_duration_is_reached(engine: Engine) -> None:
    """Mirrors WaitForCaseTest#waitforMaxDuration: execution FAILED (PT5S, failOnMaxReached).

    The condition never turns false, so this waits out the flow's five seconds.
    """
    view = await run(engine, "waitfor-max-duration.yaml")

    assert view.state == "FAILED", view.error


async def test_waitfor_with_several_tasks_ends_on_the_fourth_count(engine: Engine) -> None:
    """Mirrors WaitForCaseTest#waitforMultipleTasks: execution SUCCESS; the last task run's
    outputs.values.count is "4".

    Kestra's last task run is the last iteration's 'output_values'; this picks that
    task's last run by id rather than relying on the order of the whole list.
    """
    view = await run(engine, "waitfor-multiple-tasks.yaml")

    assert view.state == "COMPLETED", view.error
    last = [run for run in view.task_runs if run.task_id == "output_values"][-1]
    assert last.outputs is not None
    assert last.outputs["values"]["count"] == "4"
