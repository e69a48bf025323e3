"""Kestra's own test flows run unchanged to the outcomes Kestra's own tests state.

Each test names the Kestra test it mirrors (kestra-io/kestra,
core/src/test/java/io/kestra/plugin/core/**). Kestra's KILLED task runs are
pausepoint's CANCELLED ones; a Kestra SUCCESS execution is COMPLETED here.
Where Kestra counts task runs of its own making, the tests compare task ids
and states instead, and say so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pausepoint.errors import InputValidationError
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
NAMESPACE = "io.kestra.tests"
TIMEOUT = 30.0


async def run(
    engine: Engine, file_name: str, labels: dict[str, str] | None = None, **inputs: Any
) -> ExecutionView:
    record = await engine.put_flow_file(VALIDS / file_name)
    started = await engine.start_execution(
        record.namespace, record.flow_id, inputs=inputs, labels=labels
    )
    return await engine.wait(started.id, timeout=TIMEOUT)


def state_of(view: ExecutionView, task_id: str) -> str:
    (run,) = [r for r in view.task_runs if r.task_id == task_id and r.type != "iteration"]
    return run.state


def run_of(view: ExecutionView, task_id: str) -> Any:
    (run,) = [r for r in view.task_runs if r.task_id == task_id and r.type != "iteration"]
    return run


async def test_exit_ends_the_execution_in_warning(engine: Engine) -> None:
    """ExitTest#shouldExitTheExecution (exit.yaml)."""
    view = await run(engine, "exit.yaml")
    assert view.state == "WARNING"
    assert len(view.task_runs) == 2
    assert view.task_runs[0].state == "WARNING"


async def test_exit_killed_kills_the_execution(engine: Engine) -> None:
    """ExitTest#shouldExitAndKillTheExecution (exit-killed.yaml)."""
    view = await run(engine, "exit-killed.yaml")
    assert view.state == "TERMINATED"  # Kestra's KILLED
    assert len(view.task_runs) == 2
    assert [r.state for r in view.task_runs] == ["CANCELLED", "CANCELLED"]


async def test_a_dag_runs_every_task_after_its_dependencies(engine: Engine) -> None:
    """DagTest#dag (dag.yaml). Kestra counts 7 task runs of its own; here the Dag and its
    five tasks run, each after what it depends on."""
    view = await run(engine, "dag.yaml")
    assert view.state == "COMPLETED", view.error
    assert {(r.task_id, r.state) for r in view.task_runs} == {
        ("dag", "SUCCESS"),
        *((f"task{n}", "SUCCESS") for n in range(1, 6)),
    }
    ended = {r.task_id: r.ended_at or "" for r in view.task_runs}
    started = {r.task_id: r.started_at or "" for r in view.task_runs}
    for task, needs in {
        "task2": ["task1"],
        "task3": ["task2"],
        "task5": ["task3", "task4"],
    }.items():
        assert all(started[task] >= ended[need] for need in needs), task


async def test_a_dags_errors_and_finally_run_when_a_task_fails(engine: Engine) -> None:
    """DagTest#errors (finally-dag.yaml with failed=true)."""
    view = await run(engine, "finally-dag.yaml", failed=True)
    assert len(view.task_runs) == 9
    assert view.state == "FAILED"
    assert state_of(view, "ko") == "FAILED"
    for task_id in ("a1", "a2", "e1", "e2"):
        assert state_of(view, task_id) == "SUCCESS"
    assert run_of(view, "a2").started_at >= run_of(view, "a1").ended_at
    assert run_of(view, "e2").started_at >= run_of(view, "e1").ended_at


async def test_labels_tasks_set_the_execution_labels(engine: Engine) -> None:
    """RuntimeLabelsTest#update (labels-update-task.yml). Kestra's system correlation-id
    label has no counterpart here."""
    view = await run(
        engine,
        "labels-update-task.yml",
        labels={
            "keyFromExecution": "valueFromExecution",
            "overriddenExecutionLabelKey": "executionValueThatWillGetOverridden",
        },
        labelsJson='{"keyFromJson": "valueFromJson"}',
        labelsMapKey="keyFromMap",
        labelsMapValue="valueFromMap",
        labelsListKey="keyFromList",
        labelsListValue="valueFromList",
    )
    assert len(view.task_runs) == 4
    assert view.state == "COMPLETED", view.error
    overrider = run_of(view, "override-labels")
    assert view.labels == {
        "flowLabelKey": "flowLabelValue",
        "overriddenFlowLabelKey": "io.kestra.tests.labels-update-task",
        "keyFromJson": "valueFromJson",
        "keyFromMap": "valueFromMap",
        "keyFromList": "valueFromList",
        "keyFromExecution": "valueFromExecution",
        "overriddenExecutionLabelKey": f"{view.id}/{overrider.id}",
    }


async def test_a_labels_task_without_earlier_labels(engine: Engine) -> None:
    """RuntimeLabelsTest#noNpeOnNullPreviousExecutionLabels (npe-labels-update-task.yml)."""
    view = await run(engine, "npe-labels-update-task.yml")
    assert len(view.task_runs) == 1
    assert view.state == "COMPLETED", view.error
    assert view.labels["someLabel"] == f"{view.id}/{view.task_runs[0].id}"


async def test_log_to_file_stores_the_attempts_log_lines(engine: Engine) -> None:
    """LogToFileTest#task (log-to-file.yaml): SUCCESS, one task run whose attempt has a
    log file holding one line, with INFO and "Hello World!"; the line is not in the
    execution's events."""
    view = await run(engine, "log-to-file.yaml")
    assert view.state == "COMPLETED"
    (hello,) = view.task_runs
    assert hello.state == "SUCCESS" and hello.attempt == 1
    assert hello.log_file is not None
    lines = (await engine.read_file(hello.log_file)).decode().splitlines()
    assert len(lines) == 1
    assert "INFO" in lines[0] and "Hello World!" in lines[0]
    logged = [line for event in await engine.events(view.id) for line in event.data.get("logs", [])]
    assert "Hello World!" not in json.dumps(logged)


async def test_log_to_file_keeps_a_file_per_attempt_of_a_failing_task(engine: Engine) -> None:
    record = await engine.put_flow(
        """
id: log-to-file-retried
namespace: io.kestra.tests
tasks:
  - id: flaky
    type: python
    function: tests.integration.tasks_functions:log_then_fail
    logToFile: true
    retry:
      type: constant
      interval: PT0.05S
      maxAttempts: 2
"""
    )
    started = await engine.start_execution(record.namespace, record.flow_id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "FAILED"
    (flaky,) = view.task_runs
    assert (flaky.state, flaky.attempt, flaky.error) == ("FAILED", 2, "attempt 2 failed")
    assert flaky.log_file is not None and flaky.log_file.endswith("/attempt-2.log")
    for attempt in (1, 2):
        uri = flaky.log_file.replace("attempt-2.log", f"attempt-{attempt}.log")
        (line,) = (await engine.read_file(uri)).decode().splitlines()
        assert line.endswith(f"WARN attempt {attempt} is about to fail")


async def test_labels_from_numbers_and_booleans(engine: Engine) -> None:
    """RuntimeLabelsTest#primitiveTypeLabels (primitive-labels-flow.yml)."""
    view = await run(
        engine,
        "primitive-labels-flow.yml",
        labels={"existingLabel": "someValue"},
        intLabel=42,
        boolLabel=True,
        floatLabel=3.14,
    )
    assert len(view.task_runs) == 1
    assert view.state == "COMPLETED", view.error
    assert view.labels == {
        "intValue": "42",
        "boolValue": "true",
        "floatValue": "3.14",
        "taskRunId": f"{view.id}/{view.task_runs[0].id}",
        "existingLabel": "someValue",
    }


async def test_fail_on_a_switch_case(engine: Engine) -> None:
    """FailTest#failOnSwitch (fail-on-switch.yaml, param=fail): no case matches and
    there are no defaults, so the switch fails."""
    view = await run(engine, "fail-on-switch.yaml", param="fail")
    assert len(view.task_runs) == 1
    assert state_of(view, "switch") == "FAILED"
    assert view.state == "FAILED"


async def test_fail_on_a_condition(engine: Engine) -> None:
    """FailTest#failOnCondition and #dontFailOnCondition (fail-on-condition.yaml)."""
    failed = await run(engine, "fail-on-condition.yaml", param="fail")
    assert len(failed.task_runs) == 2
    assert state_of(failed, "fail") == "FAILED"
    assert failed.state == "FAILED"
    passed = await run(engine, "fail-on-condition.yaml", param="success")
    assert len(passed.task_runs) == 3
    assert state_of(passed, "fail") == "SUCCESS"
    assert passed.state == "COMPLETED"


async def test_an_assertion_that_does_not_hold_fails_the_execution(engine: Engine) -> None:
    """AssertTest#dontFailOnCondition (assert.yaml)."""
    view = await run(engine, "assert.yaml")
    assert len(view.task_runs) == 2
    assert view.state == "FAILED"
    assert "1 assertion failed" in (run_of(view, "fail").error or "")


# -- subflows ---------------------------------------------------------------------------


async def _child(engine: Engine, parent: ExecutionView, task_id: str) -> ExecutionView:
    child_id = run_of(parent, task_id).outputs["executionId"]
    return await engine.wait(child_id, timeout=TIMEOUT)


async def test_a_subflow_waits_for_its_child_and_succeeds_with_it(engine: Engine) -> None:
    """FlowCaseTest#waitSuccess (task-flow.yaml calling switch.yaml with "OK"). The child
    inherits the parent's labels; its own flow's labels win over inherited ones."""
    await engine.put_flow_file(VALIDS / "switch.yaml")
    view = await run(engine, "task-flow.yaml", {"mainFlowExecutionLabel": "execFoo"}, string="OK")
    assert view.state == "COMPLETED", view.error
    assert len(view.task_runs) == 1
    child = await _child(engine, view, "launch")
    assert run_of(view, "launch").outputs["state"] == child.state == "COMPLETED"
    assert [(r.task_id, r.state) for r in child.task_runs] == [
        ("parent-seq", "SUCCESS"),
        ("default", "SUCCESS"),
    ]
    assert run_of(child, "default").outputs["value"].startswith("default > amazing")
    assert child.parent_id == view.id
    for key, value in {
        "mainFlowExecutionLabel": "execFoo",
        "mainFlowLabel": "flowFoo",
        "launchTaskLabel": "launchFoo",
        "switchFlowLabel": "switchFoo",
        "overriding": "child",
    }.items():
        assert child.labels[key] == value, key


async def test_a_failed_subflow_fails_its_parent(engine: Engine) -> None:
    """FlowCaseTest#waitFailed (task-flow.yaml calling switch.yaml with "THIRD"): both
    FAILED, the child with its four task runs and its error handler's output."""
    await engine.put_flow_file(VALIDS / "switch.yaml")
    view = await run(engine, "task-flow.yaml", string="THIRD")
    assert view.state == "FAILED"
    assert [(r.task_id, r.state) for r in view.task_runs] == [("launch", "FAILED")]
    child = await _child(engine, view, "launch")
    assert child.state == "FAILED"
    assert len(child.task_runs) == 4
    assert run_of(child, "error-t1").outputs["value"] == "Error Trigger ! error-t1"


async def test_allow_failure_on_a_failed_subflow_ends_in_warning(engine: Engine) -> None:
    """TaskWithAllowFailureTest#executableTask_Flow (task-allow-failure-executable-flow.yml
    with for-each-item-subflow-failed.yaml): WARNING, two task runs."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow-failed.yaml")
    view = await run(engine, "task-allow-failure-executable-flow.yml")
    assert view.state == "WARNING", view.error
    assert [(r.task_id, r.state) for r in view.task_runs] == [
        ("fail", "WARNING"),
        ("log", "SUCCESS"),
    ]


async def test_allow_warning_on_a_failed_subflow_ends_in_success(engine: Engine) -> None:
    """TaskWithAllowWarningTest#executableTask_Flow (task-allow-warning-executable-flow.yml
    with for-each-item-subflow-failed.yaml): SUCCESS, two task runs."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow-failed.yaml")
    view = await run(engine, "task-allow-warning-executable-flow.yml")
    assert view.state == "COMPLETED", view.error
    assert [(r.task_id, r.state) for r in view.task_runs] == [
        ("fail", "SUCCESS"),
        ("log", "SUCCESS"),
    ]


# -- afterExecution ---------------------------------------------------------------------


def _after_started_when_it_ended(view: ExecutionView, *before: str) -> None:
    end = run_of(view, "end")
    assert end.state == "SUCCESS"
    assert view.ended_at is not None and end.started_at is not None
    assert end.started_at >= view.ended_at  # it ran once the execution had ended
    for task_id in before:
        assert end.started_at >= (run_of(view, task_id).ended_at or "")


async def test_after_execution_tasks_run_once_the_execution_ended(engine: Engine) -> None:
    """AfterExecutionTest#shouldCallTasksAfterExecution (after-execution.yaml): SUCCESS,
    two task runs, the afterExecution task reads the state the execution ended in."""
    view = await run(engine, "after-execution.yaml")
    assert view.state == "COMPLETED", view.error
    assert [r.task_id for r in view.task_runs] == ["hello", "end"]
    _after_started_when_it_ended(view, "hello")
    assert run_of(view, "end").outputs["values"]["state"] == "SUCCESS"


async def test_after_execution_tasks_run_after_finally(engine: Engine) -> None:
    """AfterExecutionTest#shouldCallTasksAfterFinally (after-execution-finally.yaml)."""
    view = await run(engine, "after-execution-finally.yaml")
    assert view.state == "COMPLETED", view.error
    assert [r.task_id for r in view.task_runs] == ["hello", "finally", "end"]
    _after_started_when_it_ended(view, "finally")
    assert run_of(view, "end").outputs["values"]["state"] == "SUCCESS"


async def test_after_execution_tasks_run_after_errors_and_see_the_failure(
    engine: Engine,
) -> None:
    """AfterExecutionTest#shouldCallTasksAfterError (after-execution-error.yaml): FAILED,
    three task runs, the afterExecution task reads FAILED."""
    view = await run(engine, "after-execution-error.yaml")
    assert view.state == "FAILED"
    assert [(r.task_id, r.state) for r in view.task_runs] == [
        ("fail", "FAILED"),
        ("hello", "SUCCESS"),
        ("end", "SUCCESS"),
    ]
    _after_started_when_it_ended(view, "fail")
    assert run_of(view, "end").outputs["values"]["state"] == "FAILED"


async def test_after_execution_runs_flowable_tasks(engine: Engine) -> None:
    """after-execution-flowable.yaml: a flowable task and the task after it both run."""
    view = await run(engine, "after-execution-flowable.yaml")
    assert view.state == "COMPLETED", view.error
    assert [(r.task_id, r.state) for r in view.task_runs] == [
        ("mytask", "SUCCESS"),
        ("after_if", "SUCCESS"),
        ("after_if_log", "SUCCESS"),
        ("after_end", "SUCCESS"),
    ]


# -- ForEachItem ------------------------------------------------------------------------

# ForEachItemCaseTest's items: 102 numbers, each left-padded to 20 characters, a line each.
ITEMS = "".join(f"{n:>20}\n" for n in range(102)).encode()
BATCH_FILE = r"kestra:///io/kestra/tests/{flow}/executions/.*/tasks/each-split/.*\.txt"


async def _items_file(engine: Engine, content: bytes = ITEMS) -> str:
    """Stored as Kestra's test stores it, before the start; the FILE input is its URI."""
    return await engine.put_namespace_file(NAMESPACE, "file/storage/file.txt", content)


async def _children(engine: Engine, parent: ExecutionView) -> list[ExecutionView]:
    records = await engine.list_executions(parent_id=parent.id, limit=1000)
    return [await engine.wait(record.id, timeout=TIMEOUT) for record in records]


def _stages(view: ExecutionView, each: str = "each") -> list[tuple[str, str]]:
    """Kestra's four task runs of a ForEachItem: itself and its three stages (the subflow
    runs of the batches, one task run each here, are left out: Kestra counts them as
    iterations of its ``each_items`` run)."""
    stages = (each, f"{each}_split", f"{each}_items", f"{each}_merge")
    return [
        (r.task_id, r.state)
        for r in view.task_runs
        if r.task_id in stages and r.type != "iteration"
    ]


async def test_for_each_item_starts_a_subflow_per_batch(engine: Engine) -> None:
    """ForEachItemCaseTest#forEachItem (for-each-item.yaml, for-each-item-subflow.yaml):
    26 subflows of 4 items, iterations counted, the first at iteration 0, each subflow's
    ``items`` a batch file of the parent's ``each_split`` run, correlated to the parent."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow.yaml")
    view = await run(engine, "for-each-item.yaml", file=await _items_file(engine))
    assert view.state == "COMPLETED", view.error
    assert _stages(view) == [
        ("each", "SUCCESS"),
        ("each_split", "SUCCESS"),
        ("each_items", "SUCCESS"),
        ("each_merge", "SUCCESS"),
    ]
    outputs = run_of(view, "each_items").outputs
    assert outputs["numberOfBatches"] == 26
    assert outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 26}
    children = await _children(engine, view)
    assert len(children) == 26
    assert all(child.flow_id == "for-each-item-subflow" for child in children)
    assert all(child.state == "COMPLETED" and len(child.task_runs) == 1 for child in children)
    iterations = {child.id: (child.trigger or {})["taskRunIteration"] for child in children}
    assert sorted(iterations.values()) == list(range(26))
    pattern = BATCH_FILE.format(flow="for-each-item")
    assert all(re.fullmatch(pattern, child.inputs["items"]) for child in children)
    first = next(c for c in children if iterations[c.id] == 0)
    assert await engine.read_file(first.inputs["items"]) == ITEMS[: 4 * 21]  # 4 lines of 21
    assert all(child.parent_id == view.id for child in children)


async def test_for_each_item_with_no_items_starts_nothing(engine: Engine) -> None:
    """ForEachItemCaseTest#forEachItemEmptyItems: SUCCESS, no subflow, no outputs on the
    subflows' stage."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow.yaml")
    view = await run(engine, "for-each-item.yaml", file=await _items_file(engine, b""))
    assert view.state == "COMPLETED", view.error
    assert len(_stages(view)) == 4
    assert not run_of(view, "each_items").outputs
    assert await engine.list_executions(parent_id=view.id) == []


async def test_for_each_item_without_waiting(engine: Engine) -> None:
    """ForEachItemCaseTest#forEachItemNoWait (for-each-item-no-wait.yaml): the parent ends
    without waiting, counting every started subflow a SUCCESS; the 26 end on their own."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow.yaml")
    view = await run(engine, "for-each-item-no-wait.yaml", file=await _items_file(engine))
    assert view.state == "COMPLETED", view.error
    outputs = run_of(view, "each_items").outputs
    assert outputs["numberOfBatches"] == 26
    assert outputs["iterations"].get("CREATED", 0) == 0
    assert outputs["iterations"]["RUNNING"] == 0
    assert outputs["iterations"]["SUCCESS"] == 26
    children = await _children(engine, view)
    assert len(children) == 26
    assert all(child.state == "COMPLETED" for child in children)


async def test_for_each_item_fails_with_its_failed_subflows(engine: Engine) -> None:
    """TaskWithAllowFailureTest#executableTask_ForEachItem
    (task-allow-failure-executable-foreachitem.yml, for-each-item-subflow-failed.yaml):
    every subflow fails, the ForEachItem fails into WARNING (allowFailure) and the flow
    goes on to WARNING."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow-failed.yaml")
    view = await run(
        engine, "task-allow-failure-executable-foreachitem.yml", file=await _items_file(engine)
    )
    assert view.state == "WARNING", view.error
    assert state_of(view, "each") == "WARNING"
    assert state_of(view, "log-allowed") == "SUCCESS"
    outputs = run_of(view, "each_items").outputs
    assert outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "FAILED": 26}
    children = await _children(engine, view)
    assert len(children) == 26 and all(child.state == "FAILED" for child in children)


async def test_for_each_item_allow_warning_ends_in_success(engine: Engine) -> None:
    """TaskWithAllowWarningTest#executableTask_ForEachItem
    (task-allow-warning-executable-foreachitem.yml): SUCCESS."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow-failed.yaml")
    view = await run(
        engine, "task-allow-warning-executable-foreachitem.yml", file=await _items_file(engine)
    )
    assert view.state == "COMPLETED", view.error
    assert state_of(view, "each") == "SUCCESS"


async def test_for_each_item_merges_the_subflows_outputs(engine: Engine) -> None:
    """ForEachItemCaseTest#forEachItemWithSubflowOutputs (for-each-item-outputs.yaml,
    for-each-item-outputs-subflow.yaml, which reads its batch with ``read()``): one line
    of outputs per subflow in ``each_merge.subflowOutputs``."""
    await engine.put_flow_file(VALIDS / "for-each-item-outputs-subflow.yaml")
    view = await run(engine, "for-each-item-outputs.yaml", file=await _items_file(engine))
    assert view.state == "COMPLETED", [(r.task_id, r.error) for r in view.task_runs if r.error]
    assert run_of(view, "each_items").outputs["iterations"]["SUCCESS"] == 26
    merged = run_of(view, "each_merge").outputs["subflowOutputs"]
    assert run_of(view, "return").outputs["value"] == merged
    lines = (await engine.read_file(merged)).decode().splitlines()
    assert len(lines) == 26
    assert json.loads(lines[0]) == {"value": ITEMS[: 4 * 21].decode()}


async def test_for_each_item_inside_an_if(engine: Engine) -> None:
    """ForEachItemCaseTest#forEachItemInIf (for-each-item-in-if.yaml, batch from an input)."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow.yaml")
    view = await run(engine, "for-each-item-in-if.yaml", file=await _items_file(engine), batch=4)
    assert view.state == "COMPLETED", view.error
    assert run_of(view, "each_items").outputs["numberOfBatches"] == 26
    children = await _children(engine, view)
    pattern = BATCH_FILE.format(flow="for-each-item-in-if")
    assert len(children) == 26 and all(re.fullmatch(pattern, c.inputs["items"]) for c in children)


async def test_for_each_item_with_after_execution(engine: Engine) -> None:
    """ForEachItemCaseTest#forEachItemWithAfterExecution: the subflows run their own
    afterExecution task (two task runs each)."""
    await engine.put_flow_file(VALIDS / "for-each-item-subflow-after-execution.yaml")
    view = await run(
        engine, "for-each-item-after-execution.yaml", file=await _items_file(engine), batch=4
    )
    assert view.state == "COMPLETED", view.error
    assert run_of(view, "each_items").outputs["iterations"]["SUCCESS"] == 26
    assert state_of(view, "afterExecution") == "SUCCESS"
    children = await _children(engine, view)
    assert len(children) == 26 and all(len(c.task_runs) == 2 for c in children)


# -- Loop (LoopCaseTest) ----------------------------------------------------------------
#
# Kestra runs each Loop iteration as an execution of its own; here an iteration is a task
# run (type "iteration") under the loop's, and the tests read the iterations' task runs
# where Kestra reads its sub-executions.


def _loop(view: ExecutionView, task_id: str = "loop") -> dict[str, Any]:
    (run,) = [r for r in view.task_runs if r.task_id == task_id and r.type == "loop"]
    return run.outputs or {}


def _iterations(view: ExecutionView, task_id: str = "loop") -> list[Any]:
    (loop,) = [r for r in view.task_runs if r.task_id == task_id and r.type == "loop"]
    return [r for r in view.task_runs if r.parent == loop.id]


def _values_of(view: ExecutionView, task_id: str) -> list[str]:
    return sorted((r.outputs or {})["value"] for r in view.task_runs if r.task_id == task_id)


async def test_a_loop_runs_every_iteration_and_counts_them(engine: Engine) -> None:
    """LoopCaseTest#loopSerial, #loopParallelUnlimited/Equal/More/Less: SUCCESS, the
    counts in the loop's outputs, each iteration's Return reading item.index/value."""
    for name, count in (
        ("loop-serial.yaml", 3),
        ("loop-parallel-unlimited.yaml", 3),
        ("loop-parallel-equal.yaml", 3),
        ("loop-parallel-more.yaml", 3),
        ("loop-parallel-less.yaml", 4),
    ):
        view = await run(engine, name)
        assert view.state == "COMPLETED", (name, view.error)
        assert _loop(view)["iterationCount"] == count, name
        assert _loop(view)["terminatedIterations"] == {"SUCCESS": count}, name
        assert _values_of(view, "item") == [f"{n} - value {n + 1}" for n in range(count)]


async def test_a_failed_iteration_fails_the_loop_and_starts_no_other(engine: Engine) -> None:
    """LoopCaseTest#loopFailed (loop-failed.yaml): the execution and the loop FAILED.
    Kestra counts one iteration: its Loop ends at the first failure and drops the
    iterations still running. Here every iteration of the loop started at once (its
    default); those in flight end as they would, then the loop fails."""
    view = await run(engine, "loop-failed.yaml")
    assert view.state == "FAILED"
    assert state_of(view, "loop") == "FAILED"
    assert set(_loop(view)["terminatedIterations"]) == {"FAILED"}


async def test_without_transmit_failed_every_iteration_runs_and_the_loop_succeeds(
    engine: Engine,
) -> None:
    """LoopCaseTest#loopTransmitFailedFalse (loop-failed-no-transmit.yaml)."""
    view = await run(engine, "loop-failed-no-transmit.yaml")
    assert view.state == "COMPLETED", view.error
    assert state_of(view, "loop") == "SUCCESS"
    assert _loop(view)["iterationCount"] == 3
    assert _loop(view)["terminatedIterations"] == {"FAILED": 3}


async def test_a_loop_over_a_mapping_gives_each_iteration_its_key(engine: Engine) -> None:
    """LoopCaseTest#loopMap (loop-map.yaml): item.key and item.value."""
    view = await run(engine, "loop-map.yaml")
    assert view.state == "COMPLETED", view.error
    assert _loop(view)["terminatedIterations"] == {"SUCCESS": 3}
    assert _values_of(view, "item") == [f"key{n} - value {n}" for n in (1, 2, 3)]


async def test_two_loops_and_nested_loops(engine: Engine) -> None:
    """LoopCaseTest#loopMultiple (two loops of 3) and #loopNested (3x3x3: item, item.parent,
    item.parents)."""
    view = await run(engine, "loop-multiple.yaml")
    assert view.state == "COMPLETED", view.error
    loops = [r for r in view.task_runs if r.type == "loop"]
    assert len(loops) == 2
    assert all((r.outputs or {})["terminatedIterations"] == {"SUCCESS": 3} for r in loops)
    nested = await run(engine, "loop-nested.yaml")
    assert nested.state == "COMPLETED", nested.error
    assert _loop(nested, "loop1")["terminatedIterations"] == {"SUCCESS": 3}
    assert len([r for r in nested.task_runs if r.task_id == "item"]) == 27
    parents = _values_of(nested, "parents")
    assert parents[0] == "0 - 1 - 0 - 1" and parents[-1] == "2 - 3 - 2 - 3"
    assert set(_values_of(nested, "parent")) == {f"{n} - {n + 1}" for n in range(3)}


async def test_an_iteration_reads_the_execution_around_the_loop(engine: Engine) -> None:
    """LoopCaseTest#loopExpressionContext (loop-expression-context.yaml)."""
    view = await run(engine, "loop-expression-context.yaml")
    assert view.state == "COMPLETED", view.error
    assert _values_of(view, "canAccessBefore") == ["I'm before the loop"] * 3
    assert _values_of(view, "contextIsFromParent") == [view.id] * 3


async def test_a_loops_declared_outputs_are_one_per_iteration(engine: Engine) -> None:
    """LoopCaseTest#loopOutputs (loop-outputs.yaml): the task after the loop reads
    ``outputs.loop.outputs``, one ``{item, outputs}`` per iteration."""
    view = await run(engine, "loop-outputs.yaml")
    assert view.state == "COMPLETED", view.error
    declared = _loop(view)["outputs"]
    assert [entry["outputs"] for entry in declared] == [{"value": "some output"}] * 3
    assert [entry["item"]["value"] for entry in declared] == ["value 1", "value 2", "value 3"]
    assert json.loads(run_of(view, "end").outputs["value"])[0]["outputs"] == {
        "value": "some output"
    }


async def test_an_iteration_whose_outputs_cannot_render_fails_the_loop(engine: Engine) -> None:
    """LoopCaseTest#loopOutputsFailedRender (loop-outputs-failed-render.yaml): FAILED, the
    iteration's own tasks SUCCESS."""
    view = await run(engine, "loop-outputs-failed-render.yaml")
    assert view.state == "FAILED"
    assert state_of(view, "loop") == "FAILED"
    inner = [r for r in view.task_runs if r.type not in ("loop", "iteration")]
    assert inner and all(r.state == "SUCCESS" for r in inner)


async def test_nested_loops_read_their_item_and_the_items_above(engine: Engine) -> None:
    """Kestra's Loop example: ``item.parent`` and ``item.parents`` reach the loops above."""
    source = """
id: nested-loops
namespace: io.kestra.tests
tasks:
  - id: years
    type: io.kestra.plugin.core.flow.Loop
    values: [2025, 2026]
    concurrencyLimit: 1
    tasks:
      - id: months
        type: io.kestra.plugin.core.flow.Loop
        values: ["March", "April"]
        concurrencyLimit: 1
        tasks:
          - id: name
            type: io.kestra.plugin.core.debug.Return
            format: >-
              {{ item.parent.value }}-{{ item.value }}-{{ item.index }}/{{ item.parents[0].index }}
"""
    await engine.put_flow(source)
    started = await engine.start_execution(NAMESPACE, "nested-loops")
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error
    names = [(r.outputs or {})["value"] for r in view.task_runs if r.task_id == "name"]
    assert names == ["2025-March-0/0", "2025-April-1/0", "2026-March-0/1", "2026-April-1/1"]


async def test_a_kill_task_kills_its_own_execution(engine: Engine) -> None:
    """kill.yaml (Kestra's Kill without an executionId): the execution ends KILLED
    (pausepoint's TERMINATED) right after the task before it."""
    view = await run(engine, "kill.yaml")
    assert view.state == "TERMINATED"
    assert state_of(view, "first") == "SUCCESS"


async def test_loop_until_loops_until_its_condition_holds(engine: Engine) -> None:
    """Kestra's LoopUntil (WaitFor's newer name): its condition says when to stop; a
    condition that never holds loops until ``maxIterations``, then FAILED with
    ``failOnMaxReached`` (loop-until-restart.yaml's shape, bounded by iterations)."""
    source = """
id: loop-until
namespace: io.kestra.tests
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{ outputs.loop.iterationCount == 3 }}"
    checkFrequency:
      interval: PT0.01S
    tasks:
      - id: count
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.loop.iterationCount }}"
  - id: never
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{ false }}"
    failOnMaxReached: true
    checkFrequency:
      interval: PT0.01S
      maxIterations: 2
    tasks:
      - id: again
        type: io.kestra.plugin.core.debug.Return
        format: again
"""
    await engine.put_flow(source)
    started = await engine.start_execution(NAMESPACE, "loop-until")
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "FAILED"
    assert run_of(view, "loop").outputs == {"iterationCount": 3}
    assert state_of(view, "loop") == "SUCCESS"
    assert state_of(view, "never") == "FAILED"
    assert len([r for r in view.task_runs if r.task_id == "again"]) == 2


@pytest.mark.parametrize(("behavior", "state"), [("RESUME", "COMPLETED"), ("FAIL", "FAILED")])
async def test_a_pause_behavior_given_by_an_input(
    engine: Engine, behavior: str, state: str
) -> None:
    """pause-behavior.yaml: the Pause's behavior is a template, rendered when its
    pauseDuration ends."""
    view = await run(engine, "pause-behavior.yaml", behavior=behavior)
    assert view.state == state, view.error
    assert state_of(view, "pause") == ("SUCCESS" if behavior == "RESUME" else "FAILED")


async def test_a_pause_behavior_that_renders_to_nothing_known_fails_the_pause(
    engine: Engine,
) -> None:
    view = await run(engine, "pause-behavior.yaml", behavior="SOMETIMES")
    assert view.state == "FAILED"
    assert "behavior 'SOMETIMES' is not RESUME, WARN, FAIL or CANCEL" in (view.error or "")


async def test_an_unset_variable_falls_back_with_the_undefined_operator(engine: Engine) -> None:
    """unset-variables.yaml: after UnsetVariables, `vars.message ??? 'default'` is the default."""
    view = await run(engine, "unset-variables.yaml")
    assert view.state == "COMPLETED", view.error
    assert run_of(view, "output").outputs["values"] == {"message": "default"}


async def test_a_json_input_is_checked_against_its_json_schema(engine: Engine) -> None:
    """json-input-schema-validation.yaml: a value its jsonSchema refuses starts nothing; one it
    accepts runs."""
    record = await engine.put_flow_file(VALIDS / "json-input-schema-validation.yaml")
    with pytest.raises(InputValidationError) as refused:
        await engine.start_execution(
            record.namespace,
            record.flow_id,
            inputs={"jsonWithSchema": '{"name": 1}', "jsonWithoutSchema": "{}"},
        )
    assert refused.value.errors[0].loc == ("inputs", "jsonWithSchema")
    assert await engine.list_executions(namespace=record.namespace) == []
    view = await run(
        engine,
        "json-input-schema-validation.yaml",
        jsonWithSchema='{"name": "kestra"}',
        jsonWithoutSchema='{"any": [1]}',
    )
    assert view.state == "COMPLETED", view.error
    assert json.loads(run_of(view, "withSchema").outputs["value"]) == {"name": "kestra"}


async def test_a_pause_that_times_out_runs_its_errors_finally_and_after_execution(
    engine: Engine,
) -> None:
    """PauseTest#shouldExecuteErrorsFinallyAndAfterExecution
    (pause-errors-finally-after-execution.yaml)."""
    view = await run(engine, "pause-errors-finally-after-execution.yaml")
    assert view.state == "FAILED"
    assert len(view.task_runs) == 4
    assert state_of(view, "pause") == "FAILED"
    assert state_of(view, "logError") == "SUCCESS"
    assert state_of(view, "logFinally") == "SUCCESS"
    assert state_of(view, "logAfter") == "SUCCESS"


async def test_a_dag_whose_concurrent_renders_below_zero_fails(engine: Engine) -> None:
    """dag-invalid-concurrent.yaml (no Kestra test states its outcome): `concurrent` is a
    template rendered when the Dag starts; -1 fails the Dag, naming the property."""
    view = await run(engine, "dag-invalid-concurrent.yaml")
    assert view.state == "FAILED"
    assert state_of(view, "dag") == "FAILED"
    assert "concurrent is 0 (every ready task at once) or more, got -1" in (view.error or "")


async def test_a_toggle_task_enables_a_paused_trigger(engine: Engine) -> None:
    """trigger-toggle.yaml (no Kestra test states its outcome): the task resumes its own
    flow's paused schedule, through the control plane, as the flow."""
    record = await engine.put_flow_file(VALIDS / "trigger-toggle.yaml")
    await engine.pause_trigger(record.namespace, record.flow_id, "schedule")
    view = await run(engine, "trigger-toggle.yaml")
    assert view.state == "COMPLETED", view.error
    assert run_of(view, "disable").outputs == {
        "namespace": record.namespace,
        "flowId": record.flow_id,
        "trigger": "schedule",
        "enabled": True,
    }
    trigger = await engine.trigger(record.namespace, record.flow_id, "schedule")
    assert trigger.paused is False


async def test_a_toggle_task_of_an_unknown_trigger_fails_naming_it(engine: Engine) -> None:
    await engine.put_flow(
        "id: toggler\nnamespace: io.kestra.tests\ntasks:\n"
        "  - id: off\n    type: io.kestra.plugin.core.trigger.Toggle\n"
        "    trigger: nope\n    enabled: false\n"
    )
    started = await engine.start_execution("io.kestra.tests", "toggler")
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "FAILED"
    assert "toggle task:" in (view.error or "") and "nope" in (view.error or "")
