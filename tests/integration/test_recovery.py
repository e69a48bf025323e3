"""Recovery in one process: a runtime that dies without letting go, and one that takes over.

The chaos suite does the same with real SIGKILLs at random moments; these
tests pin down specific moments deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
from pathlib import Path

import pytest

from pausepoint import Engine, Settings
from pausepoint.testing import fast_settings
from tests.conftest import embedded_runtime

HERE = Path(__file__).parent
# The module python tasks import (through Settings.python_paths), not a copy of it.
sys.path.insert(0, str(HERE))
recovery_functions = importlib.import_module("recovery_functions")

SLOW_FLOW = """
id: slow
namespace: recovery
tasks:
  - id: first
    type: python
    function: recovery_functions:slow
    kwargs: {seconds: 30}
  - id: second
    type: return
    format: after
finally:
  - id: cleanup
    type: return
    format: cleaned
"""


def settings_for(db_path: Path) -> Settings:
    return fast_settings(db_path, python_paths=(str(HERE),), lease_ttl=0.5)


async def die(engine: Engine) -> None:
    """Stop like a killed process: no checkpoint, no lease released, and nothing of it
    still running afterwards (its subflow, release and trigger loops stop before its store
    closes, as a dead process's would: none left mid-connection to a closed pool)."""
    for loop in (engine._subflows, engine._releaser, engine._trigger_task):
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
    runtime = embedded_runtime(engine)
    runtime._stopped = True
    for loop_task in runtime._loops:
        loop_task.cancel()
    for actor in list(runtime.actors.values()):
        await actor.cancel()
    await runtime.committer.stop()
    with contextlib.suppress(Exception):
        await engine.store.close()


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    recovery_functions.runs.clear()


async def test_cancel_accepted_while_nobody_runs_it_is_applied_by_the_process_that_takes_over(
    db_path: Path,
) -> None:
    settings = settings_for(db_path)
    first = Engine(settings)
    await first.start()
    await first.put_flow(SLOW_FLOW)
    execution = await first.start_execution("recovery", "slow")
    await first.wait(execution.id, until=lambda v: bool(recovery_functions.runs), timeout=5)
    await die(first)

    async with Engine(settings, run_executions=False) as client:
        result = await client.cancel(execution.id, reason="stop it", actor="ops")
        assert result.applied is None  # recorded; nobody runs the execution right now
        # The taker-over sees, in one step, its recovery (re-run the step) and the cancel.
        async with Engine(settings, serve=True) as taker:
            view = await taker.wait(execution.id, timeout=10)
    assert view.state == "CANCELLED"
    assert [(run.task_id, run.state) for run in view.task_runs] == [
        ("first", "CANCELLED"),
        ("cleanup", "SUCCESS"),
    ]
    commands = await taker_commands(settings, execution.id)
    assert [(c.kind, c.status, c.actor) for c in commands] == [("cancel", "applied", "ops")]


async def taker_commands(settings: Settings, execution_id: str) -> list:  # type: ignore[type-arg]
    async with Engine(settings, run_executions=False) as reader:
        return await reader.commands(execution_id)


async def test_a_step_in_flight_at_a_crash_runs_again_with_the_same_task_run_id(
    db_path: Path,
) -> None:
    settings = settings_for(db_path)
    flow = SLOW_FLOW.replace("seconds: 30", "seconds: 0.3")
    first = Engine(settings)
    await first.start()
    await first.put_flow(flow)
    execution = await first.start_execution("recovery", "slow")
    await first.wait(execution.id, until=lambda v: bool(recovery_functions.runs), timeout=5)
    await die(first)

    async with Engine(settings, serve=True) as taker:
        view = await taker.wait(execution.id, timeout=10)
        events = await taker.events(execution.id)
    assert view.state == "COMPLETED"
    run_id = f"{execution.id}/{view.task_run('first').id}"
    assert recovery_functions.runs == [run_id, run_id]  # at-least-once, one stable id
    assert view.task_run("first").outputs == {"run": run_id}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(e.type == "workflow.recovered" for e in events) == 1


async def test_a_paused_execution_stays_paused_across_a_crash(db_path: Path) -> None:
    settings = settings_for(db_path)
    first = Engine(settings)
    await first.start()
    await first.put_flow(SLOW_FLOW.replace("seconds: 30", "seconds: 0.2"))
    execution = await first.start_execution("recovery", "slow")
    await first.pause(execution.id, reason="hold")
    await first.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=5)
    await die(first)

    async with Engine(settings, serve=True) as taker:
        # A negative check: past the dead owner's lease (and a few polls), a taker that
        # wrongly adopted a paused execution would have done it by now.
        await asyncio.sleep(settings.lease_ttl + 3 * settings.poll_interval)
        state = await taker.state(execution.id)
        assert state.state == "PAUSED"
        assert state.checkpoint == "pre_execution"
        assert not embedded_runtime(taker).actors  # paused: nothing held in memory
        await taker.resume(execution.id)
        view = await taker.wait(execution.id, timeout=10)
    assert view.state == "COMPLETED"
    assert [run.task_id for run in view.task_runs] == ["first", "second", "cleanup"]


TWO_PAUSES = """
id: two_pauses
namespace: recovery
tasks:
  - id: first
    type: pause
    pauseDuration: PT0.3S
  - id: second
    type: pause
  - id: last
    type: return
    format: done
"""


async def test_a_resume_of_a_paused_copy_another_process_moved_on_applies_to_the_stored_state(
    db_path: Path,
) -> None:
    """A process keeps a paused execution's state to resume it without reading it
    back. When another process moved the execution on meanwhile (here its pause timed
    out there), that copy is stale: the checkpoint made from it is refused, and the
    resume is applied once, to the stored state (the second pause), not to the first."""
    keeper_settings = fast_settings(db_path, python_paths=(str(HERE),), poll_interval=30.0)
    async with Engine(keeper_settings, serve=True) as keeper:
        await keeper.put_flow(TWO_PAUSES)
        execution = await keeper.start_execution("recovery", "two_pauses")
        await keeper.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=10)
        async with Engine(settings_for(db_path), serve=True) as other:
            await other.wait(
                execution.id,
                until=lambda v: [p.task_id for p in v.pause_points] == ["second"],
                timeout=10,
            )
        await keeper.resume(execution.id, actor="alice")
        view = await keeper.wait(execution.id, timeout=10)
    assert view.state == "COMPLETED"
    assert [(run.task_id, run.state) for run in view.task_runs] == [
        ("first", "SUCCESS"),
        ("second", "SUCCESS"),
        ("last", "SUCCESS"),
    ]
    commands = await taker_commands(settings_for(db_path), execution.id)
    assert [(c.kind, c.status) for c in commands] == [("resume", "applied")]
