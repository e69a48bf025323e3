"""What a flowable task does with its other children when one fails, as Kestra's do.

ForEach's ``childFailurePolicy``, ``failFast`` and ``deduplicate``, and the
``onChildFailure`` of Parallel and Dag, on the real engine over a real SQLite
file. Kestra's copied flows (tests/kestra/valids/) run to the outcomes Kestra's
tests state (kestra-io/kestra, core/src/test/java/io/kestra/plugin/core/flow/);
the other flows here check what Kestra's documentation says (its Dag's
``onChildFailure`` description and the 2.0 migration guide "Keep Parallel and
Dag Tasks Running After a Failure with onChildFailure"). Kestra's KILLED task
runs are pausepoint's CANCELLED ones; Kestra counts task runs per ForEach value
where pausepoint has an iteration run of its own, so tests compare task ids and
states, not counts of Kestra's making.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pausepoint.errors import FlowError
from pausepoint.flow import load_flow_file
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
TIMEOUT = 30.0


async def run_file(engine: Engine, file_name: str, **inputs: Any) -> ExecutionView:
    record = await engine.put_flow_file(VALIDS / file_name)
    started = await engine.start_execution(record.namespace, record.flow_id, inputs=inputs)
    return await engine.wait(started.id, timeout=TIMEOUT)


async def run_yaml(engine: Engine, text: str) -> ExecutionView:
    record = await engine.put_flow(text)
    started = await engine.start_execution(record.namespace, record.flow_id)
    return await engine.wait(started.id, timeout=TIMEOUT)


def runs(view: ExecutionView) -> list[tuple[str, str]]:
    """(task id, state) of every task run but pausepoint's iteration runs, sorted."""
    return sorted((r.task_id, r.state) for r in view.task_runs if r.type != "iteration")


def state_of(view: ExecutionView, task_id: str) -> str:
    (run,) = [r for r in view.task_runs if r.task_id == task_id and r.type != "iteration"]
    return run.state


def created(run: Any) -> int:
    """A task run's place in creation order (its id counts up: ``t1``, ``t2``, …)."""
    return int(run.id.removeprefix("t"))


def iterations(view: ExecutionView) -> list[Any]:
    return sorted((r for r in view.task_runs if r.type == "iteration"), key=created)


# -- ForEach: childFailurePolicy ----------------------------------------------------------


async def test_foreach_stop_runs_its_errors_after_the_iterations_it_started(
    engine: Engine,
) -> None:
    """ForEachTest#errors (foreach-error.yaml): the three iterations start at once
    (concurrencyLimit 0), each fails, the ForEach runs its errors and fails."""
    view = await run_file(engine, "foreach-error.yaml")
    assert view.state == "FAILED"
    assert runs(view) == [
        ("e1", "SUCCESS"),
        ("e2", "SUCCESS"),
        ("each", "FAILED"),
        ("ko", "FAILED"),
        ("ko", "FAILED"),
        ("ko", "FAILED"),
    ]


@pytest.mark.parametrize("file_name", ["finally-foreach.yaml", "finally-eachparallel.yaml"])
async def test_foreach_failing_runs_errors_then_finally(engine: Engine, file_name: str) -> None:
    """FinallyTest#forEachWithErrors and #eachParallelWithErrors: 11 task runs in Kestra
    (each, three if, three ko, e1, e2, a1, a2); the execution fails."""
    view = await run_file(engine, file_name, failed=True)
    assert view.state == "FAILED"
    assert runs(view) == sorted(
        [("each", "FAILED"), *[("if", "FAILED"), ("ko", "FAILED")] * 3]
        + [(name, "SUCCESS") for name in ("e1", "e2", "a1", "a2")]
    )
    ended = {r.task_id: r.ended_at or "" for r in view.task_runs}
    started = {r.task_id: r.started_at or "" for r in view.task_runs}
    assert started["a1"] >= ended["e2"]  # finally after errors


@pytest.mark.parametrize("file_name", ["finally-foreach.yaml", "finally-eachparallel.yaml"])
async def test_foreach_succeeding_runs_only_finally(engine: Engine, file_name: str) -> None:
    """FinallyTest#forEachWithoutErrors and #eachParallelWithoutErrors: 9 task runs in
    Kestra (each, three if, three ok, a1, a2); the execution succeeds."""
    view = await run_file(engine, file_name, failed=False)
    assert view.state == "COMPLETED", view.error
    assert runs(view) == sorted(
        [
            ("each", "SUCCESS"),
            *([("if", "SUCCESS"), ("ok", "SUCCESS")] * 3),
            ("a1", "SUCCESS"),
            ("a2", "SUCCESS"),
        ]
    )


EACH_ONE_BY_ONE = """
id: one-by-one-{policy}
namespace: child.failure
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["1", "2", "3"]
    childFailurePolicy: {policy}
    tasks:
      - id: check
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{{{ taskrun.value == '1' }}}}"
"""


async def test_foreach_stop_starts_no_iteration_after_a_failure(engine: Engine) -> None:
    """STOP (the flows above; chosen here as the default, which is Kestra 1.x's
    behaviour): one iteration at a time, the first fails, no other starts."""
    view = await run_yaml(engine, EACH_ONE_BY_ONE.format(policy="STOP"))
    assert view.state == "FAILED"
    assert [(r.value, r.state) for r in iterations(view)] == [("1", "FAILED")]
    assert runs(view) == [("check", "FAILED"), ("each", "FAILED")]


async def test_foreach_continue_runs_every_iteration_then_fails(engine: Engine) -> None:
    """CONTINUE (Kestra's docs are silent: pausepoint's choice, in docs/kestra-flows.md):
    after the first iteration fails the others still run, and the ForEach fails."""
    view = await run_yaml(engine, EACH_ONE_BY_ONE.format(policy="continue"))
    assert view.state == "FAILED"
    assert [(r.value, r.state) for r in iterations(view)] == [
        ("1", "FAILED"),
        ("2", "SUCCESS"),
        ("3", "SUCCESS"),
    ]
    assert state_of(view, "each") == "FAILED"


# -- ForEach: failFast ----------------------------------------------------------------------


async def test_foreach_without_fail_fast_lets_every_iteration_end(engine: Engine) -> None:
    """RetryCaseTest#retryFlowableParallel (retry-flowable-parallel.yaml): with failFast
    false both iterations run to their own end (neither is cancelled) and the
    execution fails. (Kestra also checks that the flowable's retry reran the children:
    that is the retry behaviours' work, not checked here.)"""
    view = await run_file(engine, "retry-flowable-parallel.yaml")
    assert view.state == "FAILED"
    assert runs(view) == [("child", "FAILED"), ("child", "FAILED"), ("flowable", "FAILED")]


FAIL_FAST = """
id: fail-fast
namespace: child.failure
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["fails", "sleeps"]
    concurrencyLimit: 0
    failFast: true
    tasks:
      - id: branch
        type: io.kestra.plugin.core.flow.If
        condition: "{{ taskrun.value == 'fails' }}"
        then:
          - id: short_nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
        else:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT60S
    errors:
      - id: handled
        type: io.kestra.plugin.core.log.Log
        message: handled
"""


async def test_foreach_fail_fast_cancels_the_running_iterations(engine: Engine) -> None:
    """failFast: true, as Kestra's Parallel failFast documents it (ParallelTest#
    parallelFailFastWithErrors: the slow sibling KILLED, errors run): the iteration
    sleeping is cancelled with its Sleep (its durable timer cleared), the ForEach runs
    its errors and fails."""
    view = await run_yaml(engine, FAIL_FAST)
    assert view.state == "FAILED"
    assert [(r.value, r.state) for r in iterations(view)] == [
        ("fails", "FAILED"),
        ("sleeps", "CANCELLED"),
    ]
    assert state_of(view, "nap") == "CANCELLED"
    assert state_of(view, "handled") == "SUCCESS"
    (nap,) = [r for r in view.task_runs if r.task_id == "nap"]
    assert nap.error == "interrupted because iteration 0 of 'each' failed"


# -- ForEach: deduplicate -------------------------------------------------------------------


async def test_foreach_keeps_duplicate_values_without_deduplicate(engine: Engine) -> None:
    """ForEachTest#duplicateValues (foreach-duplicate-values.yaml): three iterations,
    values dup, dup, other at iterations 0, 1, 2, and the ForEach's outputs hold each
    iteration's outputs in order."""
    view = await run_file(engine, "foreach-duplicate-values.yaml")
    assert view.state == "COMPLETED", view.error
    children = sorted((r for r in view.task_runs if r.task_id == "child"), key=created)
    values = [(r.outputs or {}).get("values") for r in children]
    assert values == [
        {"value": "dup", "iteration": "0"},
        {"value": "dup", "iteration": "1"},
        {"value": "other", "iteration": "2"},
    ]
    each = [r for r in view.task_runs if r.task_id == "foreach" and r.type != "iteration"]
    per_iteration = (each[0].outputs or {}).get("outputs") or []
    assert [entry["child"]["values"]["value"] for entry in per_iteration] == [
        "dup",
        "dup",
        "other",
    ]


DUPLICATES = """
id: duplicates-{name}
namespace: child.failure
tasks:
  - id: each
    type: {type}
    values: ["a", "a", "b", {{"k": 1}}, {{"k": 1}}]
    tasks:
      - id: seen
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ taskrun.value }}}}"
"""


async def test_kestra_foreach_runs_each_distinct_value_once(engine: Engine) -> None:
    """Kestra's ForEach runs one iteration per distinct value unless deduplicate is
    false (Kestra 1.x's FlowableUtils.resolveEachTasks keeps distinct values;
    foreach-duplicate-values.yaml turns it off); pausepoint's own foreach keeps every
    value."""
    kestra = await run_yaml(
        engine, DUPLICATES.format(name="kestra", type="io.kestra.plugin.core.flow.ForEach")
    )
    assert kestra.state == "COMPLETED", kestra.error
    assert [r.value for r in iterations(kestra)] == ["a", "b", {"k": 1}]
    own = await run_yaml(engine, DUPLICATES.format(name="own", type="foreach"))
    assert own.state == "COMPLETED", own.error
    assert len(iterations(own)) == 5


# -- Parallel and Dag: onChildFailure -------------------------------------------------------


async def test_dag_on_child_failure_cancelled_cancels_the_sleep(engine: Engine) -> None:
    """dag-fail-fast-cancelled.yaml, to the outcome Kestra's Dag documents for
    onChildFailure CANCELLED: once a task fails with no retry left every other running
    task is interrupted and ends CANCELLED, and the Dag fails. The Sleep's durable
    timer is cleared: the execution ends without waiting its 10 seconds."""
    view = await run_file(engine, "dag-fail-fast-cancelled.yaml")
    assert view.state == "FAILED"
    assert runs(view) == [("dag", "FAILED"), ("fails_fast", "FAILED"), ("sleep", "CANCELLED")]


PARALLEL = """
id: parallel-{name}
namespace: child.failure
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    {policy}
    tasks:
      - id: fails
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: short_nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
      - id: branch
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: {nap}
          - id: after_nap
            type: io.kestra.plugin.core.log.Log
            message: after
    errors:
      - id: handled
        type: io.kestra.plugin.core.log.Log
        message: handled
    finally:
      - id: cleanup
        type: io.kestra.plugin.core.log.Log
        message: cleanup
"""


async def test_parallel_on_child_failure_fail_fails_what_runs_at_any_depth(
    engine: Engine,
) -> None:
    """The 2.0 migration guide, onChildFailure FAIL: the running tasks, also those
    nested in a Sequential branch, are interrupted and end FAILED (each naming the
    task that failed); the Parallel fails and runs its errors and finally as before."""
    view = await run_yaml(
        engine, PARALLEL.format(name="fail", policy="onChildFailure: FAIL", nap="PT60S")
    )
    assert view.state == "FAILED"
    assert runs(view) == [
        ("boom", "FAILED"),
        ("branch", "FAILED"),
        ("cleanup", "SUCCESS"),
        ("fails", "FAILED"),
        ("handled", "SUCCESS"),
        ("nap", "FAILED"),
        ("parallel", "FAILED"),
        ("short_nap", "SUCCESS"),
    ]
    (nap,) = [r for r in view.task_runs if r.task_id == "nap"]
    assert nap.error == "interrupted because sibling task 'fails' failed"


async def test_parallel_on_child_failure_continue_lets_the_others_finish(
    engine: Engine,
) -> None:
    """onChildFailure CONTINUE (Kestra 1.x's behaviour, and pausepoint's default): the
    branch running finishes what it started (its Sleep, then the rest of it), and
    the Parallel fails once it has."""
    text = PARALLEL.format(name="continue", policy="onChildFailure: continue", nap="PT2S")
    view = await run_yaml(engine, text)
    assert view.state == "FAILED"
    assert runs(view) == [
        ("after_nap", "SUCCESS"),
        ("boom", "FAILED"),
        ("branch", "SUCCESS"),
        ("cleanup", "SUCCESS"),
        ("fails", "FAILED"),
        ("handled", "SUCCESS"),
        ("nap", "SUCCESS"),
        ("parallel", "FAILED"),
        ("short_nap", "SUCCESS"),
    ]


PARALLEL_FAIL_FAST = """
id: parallel-fail-fast-{name}
namespace: child.failure
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    failFast: true
    tasks:
      - id: slow
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT60S
      - id: fail
        type: io.kestra.plugin.core.execution.Fail
        allowFailure: {allow}
    errors:
      - id: error-handler
        type: io.kestra.plugin.core.log.Log
        message: handled
    finally:
      - id: finally-handler
        type: io.kestra.plugin.core.log.Log
        message: done
"""


async def test_parallel_fail_fast_kills_the_slow_sibling(engine: Engine) -> None:
    """ParallelTest#parallelFailFastWithErrors (Kestra's Parallel `failFast`, its flow
    written out here): the slow sibling is KILLED (CANCELLED here), the errors and
    finally handlers run, the execution fails."""
    view = await run_yaml(engine, PARALLEL_FAIL_FAST.format(name="errors", allow="false"))
    assert view.state == "FAILED"
    assert runs(view) == [
        ("error-handler", "SUCCESS"),
        ("fail", "FAILED"),
        ("finally-handler", "SUCCESS"),
        ("parallel", "FAILED"),
        ("slow", "CANCELLED"),
    ]


async def test_parallel_fail_fast_ignores_a_failure_allowed(engine: Engine) -> None:
    """ParallelTest#parallelFailFastAllowFailure: the failing task allows failure, so it
    ends WARNING, nothing is interrupted and the execution ends in WARNING."""
    text = PARALLEL_FAIL_FAST.format(name="allowed", allow="true").replace("PT60S", "PT1S")
    view = await run_yaml(engine, text)
    assert view.state == "WARNING", view.error
    assert state_of(view, "fail") == "WARNING"
    assert state_of(view, "slow") == "SUCCESS"
    assert state_of(view, "finally-handler") == "SUCCESS"
    assert not [r for r in view.task_runs if r.task_id == "error-handler"]


PAUSED_SIBLING = """
id: paused-sibling
namespace: child.failure
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    onChildFailure: CANCELED
    tasks:
      - task:
          id: gate
          type: io.kestra.plugin.core.flow.Pause
      - task:
          id: boom
          type: io.kestra.plugin.core.execution.Fail
"""


async def test_an_interrupted_pause_task_leaves_nothing_paused(engine: Engine) -> None:
    """onChildFailure CANCEL (Kestra's Dag description) on a Pause task waiting: its pause
    point is closed with it, so the execution fails instead of staying PAUSED."""
    view = await run_yaml(engine, PAUSED_SIBLING)
    assert view.state == "FAILED"
    assert runs(view) == [("boom", "FAILED"), ("dag", "FAILED"), ("gate", "CANCELLED")]


RESTARTED = """
id: restarted
namespace: child.failure
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.Parallel
    onChildFailure: CANCEL
    tasks:
      - id: later
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: short_nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT2S
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
      - id: long_nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT600S
"""


async def test_a_cancel_after_a_restart_cancels_the_durable_sleep(db_path: Path) -> None:
    """Across a restart: the process stops while both Sleeps wait on durable timers; a
    new process fires the short one, its branch fails, and the long Sleep is
    cancelled (its timer cleared) instead of holding the execution for ten minutes."""
    async with Engine(fast_settings(db_path)) as engine:
        record = await engine.put_flow(RESTARTED)
        started = await engine.start_execution(record.namespace, record.flow_id)
        await engine.wait(
            started.id,
            until=lambda v: (
                {r.task_id for r in v.task_runs if r.state == "RUNNING"}
                >= {"short_nap", "long_nap"}
            ),
            timeout=TIMEOUT,
        )
    async with Engine(fast_settings(db_path), serve=True) as engine:
        view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "FAILED"
    assert runs(view) == [
        ("boom", "FAILED"),
        ("later", "FAILED"),
        ("long_nap", "CANCELLED"),
        ("parallel", "FAILED"),
        ("short_nap", "SUCCESS"),
    ]


# -- validation -----------------------------------------------------------------------------


BAD = """id: bad
namespace: child.failure
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    onChildFailure: EXPLODE
    tasks:
      - task:
          id: a
          type: io.kestra.plugin.core.log.Log
          message: hi
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1]
    childFailurePolicy: HALT
    failFast: maybe
    tasks:
      - id: b
        type: io.kestra.plugin.core.log.Log
        message: hi
"""


def test_bad_values_are_refused_naming_the_place(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(FlowError) as raised:
        load_flow_file(path)
    message = str(raised.value)
    assert f"{path}:6 tasks[0].onChildFailure: 'EXPLODE' is not allowed" in message
    assert "'CONTINUE', 'FAIL' or 'CANCEL'" in message
    assert f"{path}:15 tasks[1].childFailurePolicy: 'HALT' is not allowed" in message
    assert f"{path}:16 tasks[1].failFast: expected a boolean" in message
