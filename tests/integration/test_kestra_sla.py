"""Kestra's flow-level ``sla``, run on Kestra's own flows to the outcomes its tests state.

SLATestCase (kestra-io/kestra, core/src/test/java/io/kestra/core/runners/SLATestCase.java)
runs the sla-* flows; the flow-concurrency-sla-* flows pin what Kestra fixed where an
sla meets a concurrency limit (kestra-io/kestra#17759: an execution an
EXECUTION_ASSERTION cancels gives its slot back; #16579: a subflow failed by its
MAX_DURATION lets the next queued parent run, one at a time). Kestra's SUCCESS is
COMPLETED here. Real engine, real SQLite; waits are the flows' own durations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint.errors import FlowError
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings
from tests.integration.test_recovery import die, settings_for

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
NAMESPACE = "io.kestra.tests"
TIMEOUT = 30.0


async def run(engine: Engine, file_name: str, **inputs: Any) -> ExecutionView:
    record = await engine.put_flow_file(VALIDS / file_name)
    started = await engine.start_execution(record.namespace, record.flow_id, inputs=inputs)
    return await engine.wait(started.id, timeout=TIMEOUT)


async def violations(engine: Engine, execution_id: str) -> list[dict[str, Any]]:
    return [e.data for e in await engine.events(execution_id) if e.type == "sla.violated"]


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[Engine]:
    """An engine that also gives concurrency slots away (what `pausepoint serve` runs)."""
    async with Engine(fast_settings(db_path), serve=True) as engine:
        yield engine


async def test_a_max_duration_sla_fails_the_execution(engine: Engine) -> None:
    """SLATestCase#maxDurationSLAShouldFail (sla-max-duration-fail.yaml)."""
    view = await run(engine, "sla-max-duration-fail.yaml")
    assert view.state == "FAILED"
    assert view.error is not None
    assert view.error.startswith("SLA 'maxDuration' violated: execution duration of ")
    assert "exceeds the maximum duration of PT0.5S" in view.error
    # Kestra's kill ends the task run still going in the execution's new state.
    assert [(r.task_id, r.state) for r in view.task_runs] == [("sleep", "FAILED")]
    (violation,) = await violations(engine, view.id)
    assert (violation["sla_id"], violation["type"], violation["behavior"]) == (
        "maxDuration",
        "MAX_DURATION",
        "FAIL",
    )


async def test_a_max_duration_sla_not_reached_lets_the_execution_succeed(engine: Engine) -> None:
    """SLATestCase#maxDurationSLAShouldPass (sla-max-duration-ok.yaml)."""
    view = await run(engine, "sla-max-duration-ok.yaml")
    assert view.state == "COMPLETED", view.error
    assert await violations(engine, view.id) == []


async def test_an_assertion_sla_that_holds_lets_the_execution_succeed(engine: Engine) -> None:
    """SLATestCase#executionConditionSLAShouldPass (sla-execution-condition.yaml)."""
    view = await run(engine, "sla-execution-condition.yaml")
    assert view.state == "COMPLETED", view.error
    assert "sla" not in view.labels
    assert await violations(engine, view.id) == []


async def test_an_assertion_sla_with_cancel_cancels_the_execution(engine: Engine) -> None:
    """SLATestCase#executionConditionSLAShouldCancel (sla-execution-condition.yaml)."""
    view = await run(engine, "sla-execution-condition.yaml", string="CANCEL")
    assert view.state == "CANCELLED"
    # Checked as the execution starts, before its first task: nothing ran.
    assert view.task_runs == []
    (violation,) = await violations(engine, view.id)
    assert (violation["sla_id"], violation["behavior"]) == ("condition", "CANCEL")
    assert "sla" not in view.labels  # the violated sla has no labels


async def test_an_assertion_sla_with_none_only_labels_the_execution(engine: Engine) -> None:
    """SLATestCase#executionConditionSLAShouldLabel (sla-execution-condition.yaml)."""
    view = await run(engine, "sla-execution-condition.yaml", string="LABEL")
    assert view.state == "COMPLETED", view.error
    assert view.labels["sla"] == "violated"
    # Reported once, although it is checked again at every change of the execution.
    (violation,) = await violations(engine, view.id)
    assert (violation["sla_id"], violation["behavior"]) == ("condition", "NONE")
    # The label is searchable like any other.
    found = await engine.list_executions(labels={"sla": "violated"})
    assert [record.id for record in found] == [view.id]


async def test_an_sla_violated_in_a_subflow_fails_its_parent(engine: Engine) -> None:
    """SLATestCase#slaViolationOnSubflowMayEndTheParentFlow (sla-parent-flow.yaml,
    sla-subflow.yaml)."""
    await engine.put_flow_file(VALIDS / "sla-subflow.yaml")
    view = await run(engine, "sla-parent-flow.yaml")
    assert view.state == "FAILED"
    (child,) = await engine.list_executions(parent_id=view.id)
    assert (await engine.execution(child.id)).state == "FAILED"
    assert [(r.task_id, r.state) for r in view.task_runs] == [("subflow", "FAILED")]


async def test_an_assertion_sla_cancel_gives_the_concurrency_slot_back(server: Engine) -> None:
    """flow-concurrency-sla-assert-cancel.yml (kestra-io/kestra#17759): each execution is
    admitted, then cancelled by its sla at once; its slot is given back, so none of the
    following ones stays queued."""
    await server.put_flow_file(VALIDS / "flow-concurrency-sla-assert-cancel.yml")
    ids = [
        (await server.start_execution(NAMESPACE, "flow-concurrency-sla-assert-cancel")).id
        for _ in range(3)
    ]
    views = [await server.wait(execution_id, timeout=TIMEOUT) for execution_id in ids]
    assert [view.state for view in views] == ["CANCELLED"] * 3
    assert all(view.task_runs == [] for view in views)


async def test_a_subflow_failed_by_its_sla_frees_its_parents_slot(server: Engine) -> None:
    """flow-concurrency-sla-fail-parent.yml, flow-concurrency-sla-fail-child.yml
    (kestra-io/kestra#16579): parents run one at a time; each one's child is failed by its
    MAX_DURATION, which fails the parent, and the next queued parent then runs."""
    await server.put_flow_file(VALIDS / "flow-concurrency-sla-fail-child.yml")
    await server.put_flow_file(VALIDS / "flow-concurrency-sla-fail-parent.yml")
    first = await server.start_execution(NAMESPACE, "flow-concurrency-sla-fail-parent")
    await server.wait(first.id, until=lambda v: v.state == "RUNNING", timeout=TIMEOUT)
    second = await server.start_execution(NAMESPACE, "flow-concurrency-sla-fail-parent")
    assert (await server.execution(second.id)).state == "QUEUED"

    ended = [await server.wait(e.id, timeout=TIMEOUT) for e in (first, second)]
    assert [view.state for view in ended] == ["FAILED", "FAILED"]
    for view in ended:
        (child,) = await server.list_executions(parent_id=view.id)
        assert (await server.execution(child.id)).state == "FAILED"
    second_events = {e.type: e for e in await server.events(second.id)}
    assert second_events["workflow.queued"].seq < second_events["workflow.released"].seq
    # Given its slot once the first had ended: never two parents running at once.
    assert ended[0].ended_at is not None
    assert second_events["workflow.released"].at >= ended[0].ended_at


async def test_a_max_duration_sla_outlives_a_restart(db_path: Path) -> None:
    """The MAX_DURATION deadline is a durable timer: a process that takes the execution
    over after a crash fails it when it falls due (sla-subflow.yaml)."""
    settings = settings_for(db_path)
    first = Engine(settings)
    await first.start()
    record = await first.put_flow_file(VALIDS / "sla-subflow.yaml")
    execution = await first.start_execution(record.namespace, record.flow_id)
    await first.wait(execution.id, until=lambda v: v.state == "RUNNING", timeout=TIMEOUT)
    await die(first)

    async with Engine(settings, serve=True) as taker:
        view = await taker.wait(execution.id, timeout=TIMEOUT)
        (violation,) = await violations(taker, execution.id)
    assert view.state == "FAILED"
    assert violation["sla_id"] == "maxDuration"


SLOW_CHILD = """\
id: slow-child
namespace: sla.own
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT10M
"""

IMPATIENT_PARENT = """\
id: impatient-parent
namespace: sla.own
sla:
  - id: quick
    type: MAX_DURATION
    behavior: CANCEL
    duration: PT0.5S
    labels:
      - key: sla
        value: missed
tasks:
  - id: child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: sla.own
    flowId: slow-child
finally:
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: finally does not run after a kill
"""


async def test_an_sla_cancel_kills_the_parent_and_cancels_the_subflow_it_waits_for(
    engine: Engine,
) -> None:
    """Kestra's kill cascades to the subflows (pausepoint's own flows): the parent ends
    CANCELLED without its finally, labelled, and its child is cancelled."""
    await engine.put_flow(SLOW_CHILD)
    await engine.put_flow(IMPATIENT_PARENT)
    started = await engine.start_execution("sla.own", "impatient-parent")
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "CANCELLED"
    assert view.labels["sla"] == "missed"
    assert [(r.task_id, r.state) for r in view.task_runs] == [("child", "CANCELLED")]
    (child,) = await engine.list_executions(parent_id=view.id)
    assert (await engine.wait(child.id, timeout=TIMEOUT)).state == "CANCELLED"


BROKEN_ASSERTION = """\
id: broken-assertion
namespace: sla.own
sla:
  - id: broken
    type: EXECUTION_ASSERTION
    behavior: FAIL
    assert: "{{ nope.missing.thing }}"
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


async def test_an_assertion_that_cannot_render_counts_as_violated(engine: Engine) -> None:
    """Kestra's SLAServiceTest#shouldReturnViolationWithDeclaredBehaviorWhenAssertionCannot
    BeEvaluated: the declared behavior applies, and the reason says why."""
    await engine.put_flow(BROKEN_ASSERTION)
    started = await engine.start_execution("sla.own", "broken-assertion")
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "FAILED"
    assert view.error is not None
    assert "SLA 'broken' violated: assertion could not be evaluated" in view.error
    assert view.task_runs == []


BAD_SLA = """\
id: bad-sla
namespace: io.kestra.tests
sla:
  - id: late
    type: MAX_DURATION
    behavior: FAIL
    duration: soon
  - id: odd
    type: MIN_DURATION
    behavior: FAIL
  - id: typo
    type: EXECUTION_ASSERTION
    behavior: NONE
    assert: "{{ true }}"
    lables:
      a: b
  - id: missing
    type: MAX_DURATION
    behavior: CANCEL
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


async def test_a_bad_sla_is_refused_naming_the_field(engine: Engine) -> None:
    with pytest.raises(FlowError) as refused:
        await engine.put_flow(BAD_SLA, source_name="bad-sla.yaml")
    message = refused.value.message
    for fragment in (
        "bad-sla.yaml:7 sla[0].duration: 'soon' is not an ISO-8601 duration",
        "bad-sla.yaml:9 sla[1].type: unknown sla type 'MIN_DURATION'; "
        "expected one of MAX_DURATION, EXECUTION_ASSERTION",
        "bad-sla.yaml:15 sla[2].lables: unknown property 'lables'",
        "sla[3].duration: required property is missing",
    ):
        assert fragment in message, (fragment, message)
    assert await engine.list_flows() == []
