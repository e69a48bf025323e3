"""Control semantics end to end: pause, resume, cancel, terminate and inject on real executions.

Leaf tasks are real ``python`` tasks (tests/integration/flows_functions.py)
that wait on gates the test releases, so each test decides exactly when a
step finishes; waits gate on events or poll with a deadline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pausepoint import testing
from pausepoint.errors import Conflict, InvalidInput
from pausepoint.models import EventView, ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.service.requests import TerminateRequest
from pausepoint.testing import assert_eventually, fast_settings
from tests.integration.flows_functions import MODULE, gate, new_key

NAMESPACE = "control"
TIMEOUT = 10.0


def step_task(task_id: str, key: str, indent: int = 2) -> str:
    pad = " " * indent
    return (
        f"{pad}- id: {task_id}\n"
        f"{pad}  type: python\n"
        f"{pad}  function: {MODULE}:step\n"
        f"{pad}  kwargs:\n"
        f"{pad}    key: {key}\n"
    )


def flow_source(flow_id: str, tasks: str, finally_: str = "") -> str:
    source = f"id: {flow_id}\nnamespace: {NAMESPACE}\ntasks:\n{tasks}"
    if finally_:
        source += f"finally:\n{finally_}"
    return source


async def run_flow(engine: Engine, source: str) -> str:
    return (await testing.run_flow(engine, source)).id


async def wait_state(engine: Engine, execution_id: str, *states: str) -> ExecutionView:
    return await testing.wait_for_state(engine, execution_id, *states, timeout=TIMEOUT)


async def started(key: str) -> None:
    await asyncio.wait_for(gate(key).started.wait(), TIMEOUT)


def task_ids(view: ExecutionView) -> list[str]:
    return [run.task_id for run in view.task_runs]


def types(events: list[EventView]) -> list[str]:
    return [event.type for event in events]


def started_tasks(events: list[EventView]) -> list[str]:
    return [event.data["task_id"] for event in events if event.type == "task.started"]


def two_steps(flow_id: str, first: str, second: str, finally_: str = "") -> str:
    return flow_source(flow_id, step_task("first", first) + step_task("second", second), finally_)


# -- pause and resume ----------------------------------------------------------------


async def test_pause_while_a_step_runs_waits_for_it_then_pauses_before_the_next(
    engine: Engine,
) -> None:
    first, second = new_key("first"), new_key("second")
    execution_id = await run_flow(engine, two_steps("pause_mid_step", first, second))
    await started(first)

    reply = await engine.pause(execution_id, reason="check the numbers")

    assert reply.state == "PAUSING"
    assert reply.applied is True
    assert (await engine.state(execution_id)).state == "PAUSING"
    assert gate(first).cancellations == 0

    gate(first).release.set()
    view = await wait_state(engine, execution_id, "PAUSED")

    assert view.checkpoint == "pre_execution"
    assert view.pause_reason == "check the numbers"
    assert [(run.task_id, run.state) for run in view.task_runs] == [("first", "SUCCESS")]
    [point] = view.pause_points
    assert (point.kind, point.id, point.reason) == ("manual", reply.pause_id, "check the numbers")
    assert gate(first).finishes == 1
    assert gate(second).starts == 0
    events = await engine.events(execution_id)
    assert started_tasks(events) == ["first"]
    assert types(events)[-3:] == ["workflow.pausing", "task.completed", "workflow.paused"]
    assert events[-1].data["checkpoint"] == "pre_execution"

    resumed = await engine.resume(execution_id)
    assert resumed.state == "RUNNING"
    await started(second)
    gate(second).release.set()
    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED"
    assert task_ids(view) == ["first", "second"]
    assert gate(first).starts == 1 and gate(second).starts == 1


async def test_resume_during_pausing_withdraws_the_pause(engine: Engine) -> None:
    first, second = new_key("first"), new_key("second")
    execution_id = await run_flow(engine, two_steps("withdraw", first, second))
    await started(first)
    pause = await engine.pause(execution_id)
    assert pause.state == "PAUSING"

    resume = await engine.resume(execution_id)

    assert resume.state == "RUNNING"
    assert resume.pause_id == pause.pause_id
    assert (await engine.state(execution_id)).pause_points == []
    gate(first).release.set()
    await started(second)
    assert (await engine.state(execution_id)).state == "RUNNING"
    gate(second).release.set()
    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED"
    events = await engine.events(execution_id)
    assert "workflow.paused" not in types(events)
    [resumed] = [event for event in events if event.type == "workflow.resumed"]
    assert resumed.data["withdrawn"] is True


async def test_pause_twice_is_a_conflict_naming_the_state(engine: Engine) -> None:
    first, second = new_key("first"), new_key("second")
    execution_id = await run_flow(engine, two_steps("pause_twice", first, second))
    await started(first)
    await engine.pause(execution_id)

    with pytest.raises(Conflict, match="already pausing"):
        await engine.pause(execution_id)

    gate(first).release.set()
    await wait_state(engine, execution_id, "PAUSED")
    with pytest.raises(Conflict, match="already paused"):
        await engine.pause(execution_id)
    await engine.cancel(execution_id)
    assert (await engine.wait(execution_id, timeout=TIMEOUT)).state == "CANCELLED"


# -- cancel and terminate ------------------------------------------------------------


async def test_cancel_a_running_step_cancels_it_cooperatively_and_runs_finally(
    engine: Engine,
) -> None:
    first, second = new_key("first"), new_key("second")
    cleanup = "  - id: cleanup\n    type: return\n    format: cleaned up\n"
    execution_id = await run_flow(engine, two_steps("cancel_running", first, second, cleanup))
    await started(first)

    reply = await engine.cancel(execution_id, reason="wrong input", actor="ops")

    assert reply.applied is True
    view = await engine.wait(execution_id, timeout=TIMEOUT)
    assert view.state == "CANCELLED"
    assert gate(first).cancellations == 1
    assert gate(first).finishes == 0
    assert gate(second).starts == 0
    assert [(run.task_id, run.state) for run in view.task_runs] == [
        ("first", "CANCELLED"),
        ("cleanup", "SUCCESS"),
    ]
    events = await engine.events(execution_id)
    assert "workflow.cancelling" in types(events)
    assert events[-1].type == "workflow.cancelled"
    assert events[-1].data == {"by": "ops", "reason": "wrong input"}


@pytest.mark.parametrize("where", ["pause_task", "manual"])
async def test_cancel_a_paused_execution_cancels_at_once(engine: Engine, where: str) -> None:
    first, after = new_key("first"), new_key("after")
    if where == "pause_task":
        tasks = (
            "  - id: first\n    type: return\n    format: one\n"
            "  - id: wait\n    type: pause\n" + step_task("after", after)
        )
    else:
        tasks = step_task("first", first) + step_task("after", after)
    execution_id = await run_flow(engine, flow_source(f"cancel_paused_{where}", tasks))
    if where == "manual":
        await started(first)
        await engine.pause(execution_id)
        gate(first).release.set()
    paused = await wait_state(engine, execution_id, "PAUSED")
    assert paused.checkpoint == ("pause_task" if where == "pause_task" else "pre_execution")

    reply = await engine.cancel(execution_id)

    assert reply.state == "CANCELLED"
    view = await engine.execution(execution_id)
    assert view.state == "CANCELLED"
    assert view.pause_points == []
    assert "after" not in task_ids(view)
    assert gate(after).starts == 0
    if where == "pause_task":
        assert view.task_run("wait").state == "CANCELLED"
    with pytest.raises(Conflict, match="cancelled"):
        await engine.resume(execution_id)


async def test_terminate_stops_at_once_without_cleanup(engine: Engine) -> None:
    first, second = new_key("first"), new_key("second")
    cleanup = "  - id: cleanup\n    type: return\n    format: cleaned up\n"
    execution_id = await run_flow(engine, two_steps("terminate", first, second, cleanup))
    await started(first)

    reply = await engine.terminate(execution_id, reason="runaway cost", actor="ops")

    assert reply.state == "TERMINATED"
    assert reply.terminated_at is not None
    view = await engine.execution(execution_id)
    assert view.state == "TERMINATED"
    assert view.ended_at is not None
    assert [(run.task_id, run.state) for run in view.task_runs] == [("first", "CANCELLED")]
    await assert_eventually(lambda: _async(gate(first).cancellations == 1))
    assert gate(first).finishes == 0 and gate(second).starts == 0
    events = await engine.events(execution_id)
    assert events[-1].type == "workflow.terminated"
    assert events[-1].data["reason"] == "runaway cost"
    assert "workflow.cancelling" not in types(events)


async def _async(value: bool) -> bool:
    return value


@pytest.mark.parametrize("reason", ["", "   ", None])
async def test_terminate_without_a_reason_is_refused(engine: Engine, reason: str | None) -> None:
    first = new_key("first")
    execution_id = await run_flow(
        engine, flow_source("terminate_no_reason", step_task("first", first))
    )
    await started(first)

    with pytest.raises(InvalidInput) as refused:
        await engine.control(TerminateRequest(execution_id=execution_id, reason=reason))

    assert refused.value.errors[0].loc == ("body", "reason")
    assert (await engine.state(execution_id)).state == "RUNNING"
    assert await engine.commands(execution_id) == []
    gate(first).release.set()
    assert (await engine.wait(execution_id, timeout=TIMEOUT)).state == "COMPLETED"


async def test_terminate_reason_longer_than_500_characters_is_refused(engine: Engine) -> None:
    execution_id = await run_flow(
        engine, flow_source("terminate_long", "  - id: wait\n    type: pause\n")
    )
    await wait_state(engine, execution_id, "PAUSED")
    with pytest.raises(InvalidInput, match="500"):
        await engine.terminate(execution_id, reason="x" * 501)
    reply = await engine.terminate(execution_id, reason="x" * 500)
    assert reply.state == "TERMINATED"


# -- inject --------------------------------------------------------------------------


CONTEXT_READER = (
    "  - id: reader\n"
    "    type: python\n"
    f"    function: {MODULE}:echo\n"
    "    kwargs:\n"
    '      value: "{{ context.messages }}"\n'
)


async def test_inject_is_visible_to_a_later_task(engine: Engine) -> None:
    first = new_key("first")
    execution_id = await run_flow(
        engine, flow_source("inject_running", step_task("first", first) + CONTEXT_READER)
    )
    await started(first)

    reply = await engine.inject(execution_id, "use the blue one", role="system", actor="alice")

    assert reply.applied is True
    assert reply.state == "RUNNING"
    gate(first).release.set()
    view = await engine.wait(execution_id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    [seen] = (view.task_run("reader").outputs or {})["value"]
    assert (seen["role"], seen["message"], seen["by"], seen["seq"]) == (
        "system",
        "use the blue one",
        "alice",
        1,
    )
    [message] = view.context
    assert (message.role, message.message, message.by) == ("system", "use the blue one", "alice")
    [injected] = [e for e in await engine.events(execution_id) if e.type == "context.injected"]
    assert injected.data["message"] == "use the blue one"


async def test_inject_into_a_paused_execution_is_seen_after_resume(engine: Engine) -> None:
    execution_id = await run_flow(
        engine, flow_source("inject_paused", "  - id: wait\n    type: pause\n" + CONTEXT_READER)
    )
    await wait_state(engine, execution_id, "PAUSED")

    first = await engine.inject(execution_id, "first note")
    second = await engine.inject(execution_id, "second note", role="user")

    assert first.state == second.state == "PAUSED"
    view = await engine.execution(execution_id)
    assert view.state == "PAUSED"
    assert [m.message for m in view.context] == ["first note", "second note"]
    assert "reader" not in task_ids(view)

    await engine.resume(execution_id)
    view = await engine.wait(execution_id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    seen = (view.task_run("reader").outputs or {})["value"]
    assert [(m["seq"], m["message"]) for m in seen] == [(1, "first note"), (2, "second note")]


async def test_inject_with_an_empty_message_or_bad_role_is_refused(engine: Engine) -> None:
    execution_id = await run_flow(
        engine, flow_source("inject_bad", "  - id: wait\n    type: pause\n")
    )
    await wait_state(engine, execution_id, "PAUSED")
    with pytest.raises(InvalidInput):
        await engine.inject(execution_id, "   ")
    with pytest.raises(InvalidInput, match="role"):
        await engine.inject(execution_id, "hi", role="robot")
    assert await engine.commands(execution_id) == []


# -- idempotency and the audit trail -----------------------------------------------------


async def test_a_repeated_idempotency_key_returns_the_first_reply(engine: Engine) -> None:
    first, second = new_key("first"), new_key("second")
    execution_id = await run_flow(engine, two_steps("idempotent", first, second))
    await started(first)

    reply = await engine.pause(execution_id, idempotency_key="pause-1")
    again = await engine.pause(execution_id, idempotency_key="pause-1")

    assert reply.replayed is False
    assert again.replayed is True
    assert again.command_id == reply.command_id
    assert again.pause_id == reply.pause_id
    commands = await engine.commands(execution_id)
    assert [(c.kind, c.idempotency_key) for c in commands] == [("pause", "pause-1")]
    with pytest.raises(Conflict, match="pause-1"):
        await engine.resume(execution_id, idempotency_key="pause-1")

    gate(first).release.set()
    await wait_state(engine, execution_id, "PAUSED")
    assert (await engine.pause(execution_id, idempotency_key="pause-1")).replayed is True
    await engine.resume(execution_id, idempotency_key="resume-1")
    await started(second)
    gate(second).release.set()
    assert (await engine.wait(execution_id, timeout=TIMEOUT)).state == "COMPLETED"
    assert [c.kind for c in await engine.commands(execution_id)] == ["pause", "resume"]
    events = await engine.events(execution_id)
    assert types(events).count("workflow.pausing") == 1
    assert types(events).count("workflow.resumed") == 1


async def test_every_command_is_recorded_with_actor_reason_and_states(engine: Engine) -> None:
    first, second = new_key("first"), new_key("second")
    execution_id = await run_flow(engine, two_steps("audit", first, second))
    await started(first)

    await engine.pause(execution_id, actor="alice", reason="review")
    gate(first).release.set()
    await wait_state(engine, execution_id, "PAUSED")
    await engine.inject(execution_id, "looks fine", actor="bob")
    await engine.resume(execution_id, actor="carol")
    await started(second)
    await engine.cancel(execution_id, actor="dave", reason="enough")
    assert (await engine.wait(execution_id, timeout=TIMEOUT)).state == "CANCELLED"
    with pytest.raises(Conflict, match="cannot pause cancelled execution"):
        await engine.pause(execution_id, actor="erin")

    commands = await engine.commands(execution_id)
    assert [
        (c.kind, c.actor, c.reason, c.status, c.state_before, c.state_after) for c in commands
    ] == [
        ("pause", "alice", "review", "applied", "RUNNING", "PAUSING"),
        ("inject", "bob", None, "applied", "PAUSED", "PAUSED"),
        ("resume", "carol", None, "applied", "PAUSED", "RUNNING"),
        ("cancel", "dave", "enough", "applied", "RUNNING", "CANCELLING"),
    ]
    assert [c.seq for c in commands] == [1, 2, 3, 4]
    assert all(c.applied_at is not None and c.applied_at >= c.created_at for c in commands)
    assert commands[1].payload == {"message": "looks fine", "role": "user"}


# -- events ----------------------------------------------------------------------------


async def test_events_have_gap_free_sequence_numbers(engine: Engine) -> None:
    first, second = new_key("first"), new_key("second")
    execution_id = await run_flow(engine, two_steps("sequence", first, second))
    await started(first)
    await engine.pause(execution_id)
    await engine.inject(execution_id, "note")
    gate(first).release.set()
    await wait_state(engine, execution_id, "PAUSED")
    await engine.resume(execution_id)
    gate(second).release.set()
    await engine.wait(execution_id, timeout=TIMEOUT)

    events = await engine.events(execution_id)

    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type == "workflow.started"
    assert events[-1].type == "workflow.completed"
    assert [event.seq for event in await engine.events(execution_id, after=3, limit=2)] == [4, 5]
    assert await engine.events(execution_id, after=len(events)) == []


async def test_follow_yields_live_events_in_order_and_ends_after_the_terminal_one(
    engine: Engine,
) -> None:
    first, second = new_key("first"), new_key("second")
    execution_id = await run_flow(engine, two_steps("follow", first, second))
    seen: list[EventView] = []
    first_step_started = asyncio.Event()

    async def collect() -> None:
        async for event in engine.follow(execution_id):
            seen.append(event)
            if event.type == "task.started" and event.data["task_id"] == "first":
                first_step_started.set()

    follower = asyncio.create_task(collect())
    await asyncio.wait_for(first_step_started.wait(), TIMEOUT)
    assert not follower.done()
    gate(first).release.set()
    await started(second)
    await engine.inject(execution_id, "live")
    gate(second).release.set()
    await asyncio.wait_for(follower, TIMEOUT)

    assert [event.seq for event in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].type == "workflow.completed"
    assert seen == await engine.events(execution_id)
    assert "context.injected" in types(seen)

    replay = [event async for event in engine.follow(execution_id, after=len(seen) - 2)]
    assert replay == seen[-2:]


# -- Pause tasks with a deadline ---------------------------------------------------------


async def test_a_pause_resumed_before_its_deadline_is_not_touched_by_the_timer(
    engine: Engine,
) -> None:
    source = flow_source(
        "early_resume",
        "  - id: wait\n"
        "    type: pause\n"
        "    pauseDuration: PT0.3S\n"
        "    behavior: FAIL\n"
        "    onResume:\n"
        "      - id: note\n"
        "        type: STRING\n"
        "        defaults: from the timer\n"
        "  - id: hold\n"
        "    type: pause\n"
        "  - id: last\n"
        "    type: return\n"
        '    format: "{{ outputs.wait.onResume.note }}"\n',
    )
    execution_id = await run_flow(engine, source)
    view = await wait_state(engine, execution_id, "PAUSED")
    [point] = view.pause_points
    assert point.deadline is not None

    await engine.resume(execution_id, inputs={"note": "by hand"}, actor="alice")
    view = await engine.wait(
        execution_id,
        until=lambda v: [p.task_id for p in v.pause_points] == ["hold"],
        timeout=TIMEOUT,
    )
    before = await engine.events(execution_id)

    # A negative check: nothing to gate on, so let the deadline of `wait` pass plus several
    # polls (which would bring a due timer back) and then check that nothing happened.
    await asyncio.sleep(0.3 + 10 * engine.settings.poll_interval)

    view = await engine.execution(execution_id)
    assert view.state == "PAUSED"
    assert await engine.events(execution_id) == before
    wait_runs = [run for run in view.task_runs if run.task_id == "wait"]
    assert [run.state for run in wait_runs] == ["SUCCESS"]
    assert (wait_runs[0].outputs or {})["onResume"] == {"note": "by hand"}
    assert (wait_runs[0].outputs or {})["resumed"]["by"] == "alice"

    await engine.resume(execution_id)
    view = await engine.wait(execution_id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    assert view.task_run("last").outputs == {"value": "by hand"}


@pytest.mark.parametrize(
    ("behavior", "final", "pause_state", "after_runs"),
    [
        ("RESUME", "COMPLETED", "SUCCESS", True),
        ("WARN", "WARNING", "WARNING", True),
        ("FAIL", "FAILED", "FAILED", False),
        ("CANCEL", "CANCELLED", "CANCELLED", False),
    ],
)
async def test_pause_behavior_on_timeout(
    engine: Engine, behavior: str, final: str, pause_state: str, after_runs: bool
) -> None:
    source = flow_source(
        f"behavior_{behavior.lower()}",
        "  - id: wait\n"
        "    type: pause\n"
        "    pauseDuration: PT0.2S\n"
        f"    behavior: {behavior}\n"
        "  - id: after\n"
        "    type: return\n"
        "    format: after\n",
    )
    execution_id = await run_flow(engine, source)

    view = await engine.wait(execution_id, timeout=TIMEOUT)

    assert view.state == final
    assert view.task_run("wait").state == pause_state
    assert ("after" in task_ids(view)) is after_runs
    paused_events = [e for e in await engine.events(execution_id) if e.type == "task.paused"]
    assert [e.data["behavior"] for e in paused_events] == [behavior]


# -- several processes on one database ---------------------------------------------------


async def test_a_second_engine_controls_and_then_takes_over_an_execution(db_path: Path) -> None:
    first, second = new_key("first"), new_key("second")
    settings = fast_settings(db_path)
    async with Engine(settings) as runner, Engine(settings, serve=True) as server:
        execution_id = await run_flow(runner, two_steps("two_engines", first, second))
        await started(first)
        assert runner.runs_here(execution_id)

        reply = await server.inject(execution_id, "sent through the server", actor="remote")

        assert reply.applied is True
        assert runner.runs_here(execution_id)
        assert not server.runs_here(execution_id)
        view = await server.execution(execution_id)
        assert [m.message for m in view.context] == ["sent through the server"]

        await runner.stop()

        await assert_eventually(lambda: _async(server.runs_here(execution_id)))
        await assert_eventually(lambda: _async(gate(first).starts == 2))
        assert gate(first).cancellations == 1
        gate(first).release.set()
        await started(second)
        gate(second).release.set()
        view = await server.wait(execution_id, timeout=TIMEOUT)

        assert view.state == "COMPLETED"
        assert task_ids(view) == ["first", "second"]
        assert [m.message for m in view.context] == ["sent through the server"]
        events = await server.events(execution_id)
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        [recovered] = [e for e in events if e.type == "workflow.recovered"]
        assert recovered.data["rerun"] == [view.task_run("first").id]
        [command] = await server.commands(execution_id)
        assert (command.kind, command.actor, command.status) == ("inject", "remote", "applied")


async def test_a_pause_inside_a_container_resumes_correctly_in_a_new_process(
    db_path: Path,
) -> None:
    source = flow_source(
        "nested_pause_restart",
        "  - id: group\n"
        "    type: sequential\n"
        "    tasks:\n"
        "      - id: prepare\n"
        "        type: return\n"
        "        format: prepared\n"
        "      - id: wait\n"
        "        type: pause\n"
        "  - id: last\n"
        "    type: return\n"
        "    format: done\n",
    )
    settings = fast_settings(db_path)
    async with Engine(settings) as before_restart:
        execution_id = await run_flow(before_restart, source)
        await wait_state(before_restart, execution_id, "PAUSED")

    async with Engine(settings) as after_restart:
        await after_restart.resume(execution_id)
        view = await after_restart.wait(execution_id, timeout=TIMEOUT)

    assert view.state == "COMPLETED"
    assert [(run.task_id, run.state) for run in view.task_runs] == [
        ("group", "SUCCESS"),
        ("prepare", "SUCCESS"),
        ("wait", "SUCCESS"),
        ("last", "SUCCESS"),
    ]
