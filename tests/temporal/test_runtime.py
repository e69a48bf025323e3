"""What only the Temporal runtime has to show: the same results as embedded, commands that
survive a missing worker or a lost signal, exactly-once delivery, continue-as-new."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus

from pausepoint.config import Settings
from pausepoint.errors import InvalidInput
from pausepoint.models import EventView
from pausepoint.runtime.temporal import ExecutionWorker, TemporalRuntime, workflow_id
from pausepoint.service.engine import Engine
from pausepoint.store.records import CommandRecord
from pausepoint.testing import assert_eventually, fast_settings
from tests.integration.flows_functions import gate, new_key
from tests.integration.test_control import (
    TIMEOUT,
    flow_source,
    run_flow,
    started,
    step_task,
    types,
    wait_state,
)
from tests.temporal.conftest import running_worker, temporal_settings

OUTPUTS_FLOW = """
id: greet
namespace: temporal
inputs:
  - id: name
    type: STRING
    defaults: world
outputs:
  greeting: "{{ outputs.shout.value }}"
tasks:
  - id: hello
    type: log
    message: "hello {{ inputs.name }}"
  - id: branches
    type: parallel
    tasks:
      - id: left
        type: return
        format: left
      - id: right
        type: return
        format: right
  - id: shout
    type: return
    format: "{{ outputs.left.value }} {{ outputs.right.value }} {{ inputs.name | upper }}"
"""

APPROVAL_FLOW = """
id: approval
namespace: temporal
tasks:
  - id: approve
    type: pause
    onResume:
      - id: amount
        type: INT
      - id: approved
        type: BOOLEAN
  - id: decision
    type: return
    format: "{{ outputs.approve.onResume.amount * 2 }} {{ outputs.approve.onResume.approved }}"
"""


def temporal_runtime(engine: Engine) -> TemporalRuntime:
    runtime = engine.runtime
    assert isinstance(runtime, TemporalRuntime)
    return runtime


@contextlib.asynccontextmanager
async def without_signals(settings: Settings) -> AsyncIterator[Engine]:
    """A control plane that records commands and dies before sending them (in effect)."""
    async with Engine(settings) as engine:

        async def lost(execution_id: str, command: CommandRecord | None = None) -> bool:
            return False  # as if Temporal never heard of it: only the sweep can send it

        temporal_runtime(engine)._send = lost  # type: ignore[method-assign]
        yield engine


def comparable(events: list[EventView]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Events without their times; parallel branches may finish in either order."""
    return [e.type for e in events], sorted(
        (e.type, str(e.data.get("task_id")), str(e.data.get("task_run_id"))) for e in events
    )


async def test_a_flow_completes_with_the_same_outputs_events_and_task_runs_as_embedded(
    engine: Engine, worker: ExecutionWorker, tmp_path: Path
) -> None:
    await engine.put_flow(OUTPUTS_FLOW)
    execution = await engine.start_execution("temporal", "greet", inputs={"name": "ada"})

    view = await engine.wait(execution.id, timeout=TIMEOUT)

    assert view.state == "COMPLETED"
    assert view.outputs == {"greeting": "left right ADA"}
    async with Engine(fast_settings(tmp_path / "embedded.db")) as embedded:
        await embedded.put_flow(OUTPUTS_FLOW)
        started_there = await embedded.start_execution("temporal", "greet", inputs={"name": "ada"})
        expected = await embedded.wait(started_there.id, timeout=TIMEOUT)
        expected_events = await embedded.events(started_there.id)
    assert [(r.id, r.task_id, r.state) for r in view.task_runs] == [
        (r.id, r.task_id, r.state) for r in expected.task_runs
    ]
    assert comparable(await engine.events(execution.id)) == comparable(expected_events)
    handle = temporal_runtime(engine).client.get_workflow_handle(workflow_id(execution.id))
    assert await handle.result() == "COMPLETED"
    live = await handle.query("state")
    assert (live["status"], live["event_seq"]) == ("COMPLETED", len(expected_events))


async def test_resume_inputs_are_validated_before_anything_is_written(
    engine: Engine, worker: ExecutionWorker
) -> None:
    await engine.put_flow(APPROVAL_FLOW)
    execution = await engine.start_execution("temporal", "approval")
    paused = await wait_state(engine, execution.id, "PAUSED")
    assert paused.checkpoint == "pause_task"
    before = (await engine.events(execution.id), await engine.commands(execution.id))

    with pytest.raises(InvalidInput) as refused:
        await engine.resume(execution.id, inputs={"amount": "lots", "approved": True})

    assert [error.loc for error in refused.value.errors] == [("body", "inputs", "amount")]
    assert (await engine.events(execution.id), await engine.commands(execution.id)) == before
    reply = await engine.resume(execution.id, inputs={"amount": "21", "approved": "true"})
    assert reply.applied is True
    view = await engine.wait(execution.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    assert view.task_run("approve").outputs["onResume"] == {"amount": 21, "approved": True}  # type: ignore[index]
    assert view.task_run("decision").outputs == {"value": "42 True"}


@pytest.mark.parametrize("settings_overrides", [{"command_wait_timeout": 0.3}])
async def test_commands_accepted_while_no_worker_runs_apply_once_one_starts(
    control_plane: Engine, settings: Settings
) -> None:
    first = new_key("first")
    execution_id = await run_flow(
        control_plane, flow_source("no_worker", step_task("first", first))
    )
    paused = await control_plane.pause(execution_id, reason="not yet")
    injected = await control_plane.inject(execution_id, "remember me")
    assert (paused.applied, injected.applied) == (None, None)  # recorded, not yet applied
    assert (await control_plane.state(execution_id)).state == "QUEUED"

    async with running_worker(settings):
        view = await wait_state(control_plane, execution_id, "PAUSED")
        assert view.pause_reason == "not yet"
        assert [m.message for m in view.context] == ["remember me"]
        assert gate(first).starts == 0  # paused before the first task
        await control_plane.resume(execution_id)
        await started(first)
        gate(first).release.set()
        view = await control_plane.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED"
    commands = await control_plane.commands(execution_id)
    assert [(c.kind, c.status) for c in commands] == [
        ("pause", "applied"),
        ("inject", "applied"),
        ("resume", "applied"),
    ]


@pytest.mark.parametrize("settings_overrides", [{"command_wait_timeout": 0.3}])
async def test_a_cancel_applied_in_the_step_whose_resume_starts_a_task_still_finishes(
    control_plane: Engine, settings: Settings
) -> None:
    after = new_key("after")
    pause = "  - id: wait\n    type: pause\n"
    source = flow_source("resume_cancel", pause + step_task("after", after))
    execution_id = await run_flow(control_plane, source)
    async with running_worker(settings):
        await wait_state(control_plane, execution_id, "PAUSED")
    # No worker runs: both signals wait for the same workflow task, so one engine step
    # starts "after" (the resume) and cancels it (the cancel), as after a worker dies.
    resumed = await control_plane.resume(execution_id)
    cancelled = await control_plane.cancel(execution_id, reason="changed my mind")
    assert (resumed.applied, cancelled.applied) == (None, None)  # recorded, not yet applied

    async with running_worker(settings):
        view = await wait_state(control_plane, execution_id, "CANCELLED")

    assert [(run.task_id, run.state) for run in view.task_runs] == [
        ("wait", "SUCCESS"),
        ("after", "CANCELLED"),
    ]
    assert gate(after).starts == 0
    events = await control_plane.events(execution_id)
    assert types(events)[-4:] == [
        "task.started",
        "workflow.cancelling",
        "task.cancelled",
        "workflow.cancelled",
    ]
    commands = await control_plane.commands(execution_id)
    assert [(c.kind, c.status) for c in commands] == [("resume", "applied"), ("cancel", "applied")]


async def test_a_command_recorded_but_never_signalled_is_sent_by_the_sweep(
    engine: Engine, settings: Settings
) -> None:
    first, second = new_key("first"), new_key("second")
    source = flow_source("sweep", step_task("first", first) + step_task("second", second))
    execution_id = await run_flow(engine, source)
    await started(first)

    async with without_signals(settings) as crashed:
        reply = await crashed.cancel(execution_id, reason="from a dying process")

    assert reply.applied is True  # the sweep of `engine` sent it meanwhile
    view = await engine.wait(execution_id, timeout=TIMEOUT)
    assert view.state == "CANCELLED"
    assert gate(first).cancellations == 1 and gate(second).starts == 0


async def test_commands_apply_once_and_in_acceptance_order_however_they_arrive(
    engine: Engine, settings: Settings
) -> None:
    first = new_key("first")
    execution_id = await run_flow(engine, flow_source("order", step_task("first", first)))
    await started(first)
    async with without_signals(settings) as quiet:
        await quiet.inject(execution_id, "one")
        await quiet.inject(execution_id, "two")
    commands = await engine.store.list_commands(execution_id)

    runtime = temporal_runtime(engine)
    for command in [*reversed(commands), *commands]:  # late, out of order, then again
        await runtime.deliver(command, 0, wait=0)
    await assert_eventually(
        lambda: _all_applied(engine, execution_id),
        timeout=TIMEOUT,
    )
    gate(first).release.set()
    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert [m.message for m in view.context] == ["one", "two"]
    events = await engine.events(execution_id)
    assert types(events).count("context.injected") == 2


async def _all_applied(engine: Engine, execution_id: str) -> bool:
    return all(c.status == "applied" for c in await engine.store.list_commands(execution_id))


async def test_a_long_execution_continues_as_new_without_losing_state_or_commands(
    db_path: Path, temporal_address: str
) -> None:
    settings = temporal_settings(db_path, temporal_address, temporal_continue_as_new_after=40)
    gated = new_key("gated")
    returns = "".join(f"  - id: step{n}\n    type: return\n    format: '{n}'\n" for n in range(12))
    source = flow_source(
        "long",
        returns
        + step_task("gated", gated)
        + "  - id: approve\n    type: pause\n"
        + "    onResume:\n      - id: note\n        type: STRING\n"
        + "  - id: last\n    type: return\n"
        + '    format: "{{ outputs.step3.value }} {{ outputs.approve.onResume.note }}'
        + ' {{ context.messages | length }}"\n',
    )
    async with Engine(settings, serve=True) as engine, running_worker(settings):
        execution_id = await run_flow(engine, source)
        await started(gated)
        await engine.inject(execution_id, "kept across runs")
        gate(gated).release.set()
        await wait_state(engine, execution_id, "PAUSED")
        await engine.resume(execution_id, inputs={"note": "ok"})
        view = await engine.wait(execution_id, timeout=TIMEOUT)

        handle = temporal_runtime(engine).client.get_workflow_handle(workflow_id(execution_id))
        description = await handle.describe()
        first_run = description.raw_description.workflow_execution_info.first_run_id
        events = await engine.events(execution_id)

    assert view.state == "COMPLETED"
    assert view.task_run("last").outputs == {"value": "3 ok 1"}
    assert first_run and first_run != description.run_id  # it did continue as new
    assert gate(gated).starts == 1
    assert [run.task_id for run in view.task_runs].count("step0") == 1
    assert types(events).count("task.started") == 15
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_worker_restarted_mid_task_runs_the_task_again_and_paused_stays_paused(
    control_plane: Engine, settings: Settings
) -> None:
    first, second = new_key("first"), new_key("second")
    source = flow_source("restart", step_task("first", first) + step_task("second", second))
    execution_id = await run_flow(control_plane, source)
    async with running_worker(settings):
        await started(first)
        await control_plane.pause(execution_id, reason="over the restart")
    assert gate(first).cancellations == 1  # the worker stopped under it

    gate(first).started.clear()
    async with running_worker(settings):
        await started(first)  # at-least-once: the unfinished attempt runs again
        gate(first).release.set()
        view = await wait_state(control_plane, execution_id, "PAUSED")
    assert view.pause_reason == "over the restart"

    async with running_worker(settings):
        assert (await control_plane.state(execution_id)).state == "PAUSED"
        await control_plane.resume(execution_id)
        await started(second)
        gate(second).release.set()
        view = await control_plane.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED"
    assert [(run.task_id, run.state, run.attempt) for run in view.task_runs] == [
        ("first", "SUCCESS", 1),
        ("second", "SUCCESS", 1),
    ]
    assert gate(first).starts == 2 and gate(second).starts == 1


async def test_events_written_by_workers_reach_followers_and_the_organization_feed(
    engine: Engine, worker: ExecutionWorker
) -> None:
    organization: list[int] = []
    subscription = engine.feed.subscribe_organization(
        engine.org_id, lambda events: organization.extend(e.seq for e in events or ())
    )
    followed: list[int] = []
    try:
        await engine.put_flow(OUTPUTS_FLOW)
        execution = await engine.start_execution("temporal", "greet")
        engine.feed.subscribe(execution.id, lambda events: followed.extend(e.seq for e in events))
        view = await engine.wait(execution.id, timeout=TIMEOUT)
        stored = [event.seq for event in await engine.events(execution.id)]

        async def fed() -> bool:
            return organization == stored and bool(followed)

        await assert_eventually(fed, timeout=TIMEOUT)
    finally:
        engine.feed.unsubscribe_organization(subscription)
    assert view.state == "COMPLETED"
    assert followed == stored[-len(followed) :]  # live, in order, up to the terminal event


@pytest.mark.parametrize(
    "settings_overrides", [{"temporal_terminate_after": 0.5, "command_wait_timeout": 0.2}]
)
async def test_a_terminate_no_worker_applies_ends_the_workflow_through_temporal(
    control_plane: Engine, settings: Settings
) -> None:
    first = new_key("first")
    cleanup = "  - id: cleanup\n    type: return\n    format: cleaned up\n"
    execution_id = await run_flow(
        control_plane, flow_source("stuck", step_task("first", first), cleanup)
    )
    async with running_worker(settings):
        await started(first)
    await control_plane.pause(execution_id)  # stays pending: no worker runs

    reply = await control_plane.terminate(execution_id, reason="worker fleet is gone")

    assert reply.applied is None
    view = await wait_state(control_plane, execution_id, "TERMINATED")
    assert [(run.task_id, run.state) for run in view.task_runs] == [("first", "CANCELLED")]
    events = await control_plane.events(execution_id)
    assert types(events)[-3:] == ["workflow.pausing", "task.cancelled", "workflow.terminated"]
    assert events[-1].data["reason"] == "worker fleet is gone"
    commands = await control_plane.commands(execution_id)
    assert [(c.kind, c.status) for c in commands] == [
        ("pause", "applied"),
        ("terminate", "applied"),
    ]
    handle = temporal_runtime(control_plane).client.get_workflow_handle(workflow_id(execution_id))
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.TERMINATED
    async with running_worker(settings):  # a worker coming back changes nothing
        # A negative check: no event can say "nothing happened", so give it the time to.
        await asyncio.sleep(0.5)
    assert await control_plane.events(execution_id) == events


async def test_restarting_the_api_server_loses_nothing_and_paused_stays_paused(
    settings: Settings, worker: ExecutionWorker
) -> None:
    first, second = new_key("first"), new_key("second")
    source = flow_source("apirestart", step_task("first", first) + step_task("second", second))
    async with Engine(settings, serve=True) as before:
        running = await run_flow(before, source)
        await before.put_flow(APPROVAL_FLOW)
        waiting = (await before.start_execution("temporal", "approval")).id
        await started(first)
        await wait_state(before, waiting, "PAUSED")
        # Accepted just before the API server goes away: it must still apply.
        await before.pause(running, reason="across the restart")
    gate(first).release.set()  # the step finishes while no API server runs
    async with Engine(settings, serve=True) as after:
        view = await wait_state(after, running, "PAUSED")
        assert view.pause_reason == "across the restart"
        assert (await after.state(waiting)).state == "PAUSED"
        await after.resume(running)
        await started(second)
        gate(second).release.set()
        await after.resume(waiting, inputs={"amount": 2, "approved": True})
        finished = [await after.wait(i, timeout=TIMEOUT) for i in (running, waiting)]
    assert [view.state for view in finished] == ["COMPLETED", "COMPLETED"]
    assert gate(first).starts == 1 and gate(second).starts == 1
