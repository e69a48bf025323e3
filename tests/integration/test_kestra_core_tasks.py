"""Kestra's own core test flows run unchanged, to the outcomes Kestra's Java tests state.

The flows are byte-for-byte copies of kestra-io/kestra
core/src/test/resources/flows/valids/ (Apache-2.0), kept in tests/kestra/valids/.
Each test names the Kestra test (class#method) it mirrors and asserts only what that
test asserts, in pausepoint's state names: Kestra's execution SUCCESS is COMPLETED,
KILLED is TERMINATED; task-run states keep Kestra's names. The table is
tests/kestra/OUTCOMES.md.
"""

from __future__ import annotations

from pathlib import Path

from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
NAMESPACE = "io.kestra.tests"
TIMEOUT = 30.0


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

    Kestra's KILLED execution is pausepoint's TERMINATED; task runs keep KILLED.
    """
    view = await run(engine, "exit-killed.yaml")

    assert view.state == "TERMINATED", view.error
    assert task_ids(view) == ["if", "exit"]
    assert [run.state for run in view.task_runs] == ["KILLED", "KILLED"]
