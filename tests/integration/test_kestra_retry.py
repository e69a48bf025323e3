"""Kestra's retry behaviors run to the outcomes Kestra's own tests state.

Each test names the Kestra test it mirrors (kestra-io/kestra,
core/src/test/java/io/kestra/plugin/core/flow/RetryCaseTest.java). Kestra wipes
a flowable's earlier rounds of task runs when RETRY_FLOWABLE runs it again;
pausepoint keeps them as history, so the tests count rounds where Kestra counts
runs, and say so. Kestra's RETRIED execution (retried by a new execution) is a
FAILED one here whose ``retried_by`` names the new execution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pausepoint.api.kestra_shapes import kestra_execution
from pausepoint.errors import FlowError
from pausepoint.flow import load_flow
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.tasks.context import LeafContext

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
TIMEOUT = 60.0


async def run(engine: Engine, file_name: str) -> ExecutionView:
    record = await engine.put_flow_file(VALIDS / file_name)
    started = await engine.start_execution(record.namespace, record.flow_id)
    return await engine.wait(started.id, timeout=TIMEOUT)


def runs_of(view: ExecutionView, task_id: str) -> list[Any]:
    return [r for r in view.task_runs if r.task_id == task_id and r.type != "iteration"]


async def retry_chain(engine: Engine, first: ExecutionView) -> list[ExecutionView]:
    """The first execution and every execution that retried it, in order."""
    chain = [first]
    while chain[-1].retried_by is not None:
        chain.append(await engine.wait(chain[-1].retried_by, timeout=TIMEOUT))
    return chain


def assert_linked(chain: list[ExecutionView]) -> None:
    """Every retry names the first execution and counts its attempt; only the last is not
    retried."""
    first = chain[0]
    for number, view in enumerate(chain, start=1):
        assert view.state == "FAILED", view.error
        assert view.attempt_number == number
        assert view.original_id == (None if number == 1 else first.id)
        assert view.inputs == first.inputs
        if number > 1:
            assert view.labels.get("system.replay") == "true"
    assert all(view.retried_by is not None for view in chain[:-1])
    assert chain[-1].retried_by is None


# -- RETRY_FLOWABLE --------------------------------------------------------------------


async def test_retry_flowable_runs_the_flowable_again_as_a_whole(engine: Engine) -> None:
    """RetryCaseTest#retryFlowableBehavior (retry-flowable-behavior.yaml): FAILED, seq1
    tried 3 times; its Fail child has no retry of its own and is not retried as a leaf.
    Kestra keeps one run of each child (the last round's); here each round's stay."""
    view = await run(engine, "retry-flowable-behavior.yaml")
    assert view.state == "FAILED"
    (seq,) = runs_of(view, "seq1")
    assert seq.attempt == 3
    assert seq.state == "FAILED"
    assert [r.state for r in runs_of(view, "get_token")] == ["SUCCESS"] * 3
    calls = runs_of(view, "call_api")
    assert [(r.state, r.attempt) for r in calls] == [("FAILED", 1)] * 3
    # Each round renders its Fail's message from that round's own token.
    tokens = [r.outputs["value"] for r in runs_of(view, "get_token")]
    assert [r.error for r in calls] == [f"Calling API with {token}" for token in tokens]


async def test_retry_flowable_allows_the_failure_only_after_the_last_attempt(
    engine: Engine,
) -> None:
    """RetryCaseTest#retryFlowableBehaviorAllowFailure
    (retry-flowable-behavior-allow-failure.yaml): WARNING, `allow` tried twice, `after`
    runs once."""
    view = await run(engine, "retry-flowable-behavior-allow-failure.yaml")
    assert view.state == "WARNING"
    (allow,) = runs_of(view, "allow")
    assert (allow.state, allow.attempt) == ("WARNING", 2)
    assert len(runs_of(view, "always_fails")) == 2
    (after,) = runs_of(view, "after")
    assert after.state == "SUCCESS"


async def test_retry_flowable_keeps_the_leaf_retry_inside_each_round(engine: Engine) -> None:
    """RetryCaseTest#retryFlowableBehaviorNestedLeaf
    (retry-flowable-behavior-nested-leaf.yaml): FAILED, seq1 tried twice, and in each
    round the leaf tried twice (Kestra keeps the last round's leaf run only)."""
    view = await run(engine, "retry-flowable-behavior-nested-leaf.yaml")
    assert view.state == "FAILED"
    (seq,) = runs_of(view, "seq1")
    assert seq.attempt == 2
    assert [(r.state, r.attempt) for r in runs_of(view, "leaf")] == [("FAILED", 2)] * 2


@pytest.mark.xfail(
    reason="the flow counts its rounds with Kestra's kv() function, which pausepoint's "
    "expressions refuse (the engine does no I/O): each round fails rendering it",
    strict=True,
)
async def test_retry_flowable_stops_once_a_round_succeeds(engine: Engine) -> None:
    """RetryCaseTest#retryFlowableBehaviorSuccess (retry-flowable-behavior-success.yaml):
    SUCCESS, seq1 tried 3 times, `check` SUCCESS."""
    view = await run(engine, "retry-flowable-behavior-success.yaml")
    assert view.state == "COMPLETED", view.error
    (seq,) = runs_of(view, "seq1")
    assert seq.attempt == 3
    assert runs_of(view, "check")[-1].state == "SUCCESS"


FOREACH_FLOWABLE = """
id: retry-flowable-foreach
namespace: io.kestra.tests
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    retry:
      type: constant
      behavior: RETRY_FLOWABLE
      maxAttempts: 2
      interval: PT1S
    tasks:
      - id: fail_on_b
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ taskrun.value == 'b' }}"
"""


async def test_retry_flowable_on_a_foreach_runs_every_iteration_again(engine: Engine) -> None:
    """RETRY_FLOWABLE on a ForEach reruns the ForEach as a whole (every iteration), not
    only the iteration that failed (no Kestra flow of the copied ones has this shape)."""
    record = await engine.put_flow(FOREACH_FLOWABLE)
    started = await engine.start_execution(record.namespace, record.flow_id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "FAILED"
    (each,) = runs_of(view, "each")
    assert (each.state, each.attempt) == ("FAILED", 2)
    iterations = [r for r in view.task_runs if r.type == "iteration"]
    assert [r.attempt for r in iterations] == [1, 1, 1, 1]
    assert [r.state for r in runs_of(view, "fail_on_b")] == ["SUCCESS", "FAILED"] * 2


# -- the flow's RETRY_FAILED (RETRY_FAILED_TASK) ---------------------------------------


async def test_a_flow_retry_failed_reruns_the_failed_task(engine: Engine) -> None:
    """RetryCaseTest#retryFailedFlowAttempts (retry-failed-flow-attempts.yml): FAILED,
    the task run's fourth attempt; no new execution."""
    view = await run(engine, "retry-failed-flow-attempts.yml")
    assert view.state == "FAILED"
    (fail,) = runs_of(view, "fail")
    assert fail.attempt == 4
    assert view.retried_by is None


# -- CREATE_NEW_EXECUTION / NEW_EXECUTION ------------------------------------------------


@pytest.mark.parametrize(
    "file_name",
    ["retry-new-execution-task-attempts.yml", "retry-new-execution-flow-attempts.yml"],
)
async def test_a_new_execution_retry_ends_after_its_attempts(
    engine: Engine, file_name: str
) -> None:
    """RetryCaseTest#retryNewExecutionTaskAttempts and #retryNewExecutionFlowAttempts:
    the executions of the flow end RETRIED, RETRIED, FAILED (here: two FAILED executions
    retried by the next, then a FAILED one not retried)."""
    first = await run(engine, file_name)
    chain = await retry_chain(engine, first)
    assert len(chain) == 3
    assert_linked(chain)
    for view in chain:
        (fail,) = runs_of(view, "fail")
        assert (fail.state, fail.attempt) == ("FAILED", 1)
    # Kestra's API shows them as Kestra's test reads them.
    shown = [kestra_execution(view) for view in chain]
    assert [e["state"]["current"] for e in shown] == ["RETRIED", "RETRIED", "FAILED"]
    assert [e["originalId"] for e in shown] == [first.id] * 3


@pytest.mark.parametrize(
    "file_name",
    ["retry-new-execution-task-duration.yml", "retry-new-execution-flow-duration.yml"],
)
async def test_a_new_execution_retry_ends_after_its_duration(
    engine: Engine, file_name: str
) -> None:
    """RetryCaseTest#retryNewExecutionTaskDuration and #retryNewExecutionFlowDuration:
    retried by new executions, then one FAILED not retried (how many fit in maxDuration
    depends on the clock, so the test does not count them)."""
    first = await run(engine, file_name)
    chain = await retry_chain(engine, first)
    assert len(chain) >= 2
    assert_linked(chain)


async def test_a_subflow_retried_by_a_new_execution_answers_its_parent(engine: Engine) -> None:
    """RetryCaseTest#retryNewExecutionSubflowOutputs (subflow-retry-new-execution-parent.yaml
    with subflow-retry-new-execution-child.yaml): the child's first execution fails, its
    retry succeeds, and the parent reads the retry's output file: SUCCESS."""
    await engine.put_flow_file(VALIDS / "subflow-retry-new-execution-child.yaml")
    view = await run(engine, "subflow-retry-new-execution-parent.yaml")
    assert view.state == "COMPLETED", view.error
    (read,) = runs_of(view, "read")
    assert read.state == "SUCCESS"
    assert read.outputs["value"] == "dummy"
    (subflow,) = runs_of(view, "subflow")
    retry = await engine.wait(subflow.outputs["executionId"], timeout=TIMEOUT)
    assert retry.state == "COMPLETED"
    assert retry.attempt_number == 2
    assert retry.original_id is not None
    first = await engine.wait(retry.original_id, timeout=TIMEOUT)
    assert (first.state, first.retried_by) == ("FAILED", retry.id)
    assert [r.state for r in runs_of(retry, "fail_first_execution")] == ["SKIPPED"]


async def test_the_retry_stage_run_again_starts_no_second_execution(engine: Engine) -> None:
    """Exactly once: a crash (or a replayed step) runs the stage that starts the new
    execution again; it finds the execution it started, and no other appears."""
    first = await run(engine, "retry-new-execution-task-attempts.yml")
    chain = await retry_chain(engine, first)
    (stage,) = runs_of(first, "fail_retry")
    assert stage.outputs == {"executionId": first.retried_by}
    record = await engine.store.get_execution(first.id)
    assert record is not None
    again = await engine._task_control().retry_execution(
        LeafContext(
            execution_id=first.id,
            task_run_id=f"{first.id}/{stage.id}",
            attempt=2,
            settings=engine.settings,
            log=lambda level, message: None,
        ),
        original_id=first.id,
        attempt=2,
        original_created_at=record.created_at,
    )
    assert again == {"executionId": first.retried_by}
    records = await engine.list_executions(flow_id="retry-new-execution-task-attempts")
    assert sorted(record.id for record in records) == sorted(view.id for view in chain)


# -- refused behaviors -------------------------------------------------------------------


def problem_of(text: str) -> str:
    with pytest.raises(FlowError) as caught:
        load_flow(text, source="retry.yaml")
    return caught.value.message


def test_retry_flowable_on_a_task_that_holds_none_is_refused_where_written() -> None:
    message = problem_of(
        "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: hi\n    retry:\n      behavior: RETRY_FLOWABLE\n      maxAttempts: 2\n"
    )
    assert message.startswith("retry.yaml:7 tasks[0].retry: behavior RETRY_FLOWABLE")
    assert "'a' is not one" in message


def test_an_unknown_retry_behavior_is_refused_naming_the_known_ones() -> None:
    message = problem_of(
        "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: hi\n    retry:\n      behavior: RETRY_LATER\n"
    )
    assert message.startswith("retry.yaml:8 tasks[0].retry.behavior: 'RETRY_LATER' is not allowed")
    assert "'CREATE_NEW_EXECUTION'" in message


def test_retry_flowable_on_the_flow_is_refused() -> None:
    message = problem_of(
        "id: f\nnamespace: n\nretry:\n  behavior: RETRY_FLOWABLE\n  maxAttempts: 2\ntasks:\n"
        "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )
    assert message.startswith("retry.yaml:4 retry.behavior: RETRY_FLOWABLE is a flowable task's")
