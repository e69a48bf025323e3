"""LISTEN/NOTIFY: a command accepted by one server reaches the server running the
execution at once, not at its next poll.

The runner polls only every ``SLOW_POLL`` seconds here, far longer than the
tests wait: only a notification can wake it in time.
"""

from __future__ import annotations

import asyncio
import time

from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings
from tests.integration.flows_functions import MODULE, gate, new_key

SLOW_POLL = 60.0
PROMPTLY = 5.0  # seconds: generous for a loaded CI machine, far below SLOW_POLL

APPROVAL = """
id: approval
namespace: notify
tasks:
  - id: wait
    type: pause
  - id: done
    type: return
    format: done
"""


def two_steps(first: str, second: str) -> str:
    return "id: steps\nnamespace: notify\ntasks:\n" + "".join(
        f"  - id: {task_id}\n    type: python\n    function: {MODULE}:step\n"
        f"    kwargs:\n      key: {key}\n"
        for task_id, key in (("first", first), ("second", second))
    )


async def test_a_resume_accepted_by_another_server_wakes_the_paused_execution(
    postgres_url: str,
) -> None:
    runner_settings = fast_settings(postgres_url, poll_interval=SLOW_POLL)
    async with (
        Engine(runner_settings, serve=True) as runner,
        Engine(fast_settings(postgres_url), run_executions=False) as api,
    ):
        await runner.put_flow(APPROVAL)
        execution = await runner.start_execution("notify", "approval")
        await runner.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=PROMPTLY)
        assert not runner.runs_here(execution.id)  # paused: nobody holds it

        started = time.monotonic()
        await api.resume(execution.id, actor="api")
        view = await runner.wait(execution.id, timeout=PROMPTLY)

        assert view.state == "COMPLETED"
        assert time.monotonic() - started < PROMPTLY


async def test_a_pause_accepted_by_another_server_lands_at_the_runners_next_checkpoint(
    postgres_url: str,
) -> None:
    first, second = new_key("first"), new_key("second")
    runner_settings = fast_settings(postgres_url, poll_interval=SLOW_POLL)
    async with (
        Engine(runner_settings, serve=True) as runner,
        Engine(fast_settings(postgres_url), run_executions=False) as api,
    ):
        await runner.put_flow(two_steps(first, second))
        execution = await runner.start_execution("notify", "steps")
        await asyncio.wait_for(gate(first).started.wait(), PROMPTLY)

        reply = await api.pause(execution.id, actor="api")
        assert reply.state in ("RUNNING", "PAUSING")
        await runner.wait(execution.id, until=lambda v: v.state == "PAUSING", timeout=PROMPTLY)
        gate(first).release.set()
        view = await runner.wait(
            execution.id, until=lambda v: v.state == "PAUSED", timeout=PROMPTLY
        )

        assert [run.task_id for run in view.task_runs] == ["first"]
        assert gate(second).starts == 0
        [command] = await api.commands(execution.id)
        assert (command.kind, command.actor, command.status) == ("pause", "api", "applied")


async def test_a_follower_on_another_server_hears_of_new_events_at_once(
    postgres_url: str,
) -> None:
    first, second = new_key("first"), new_key("second")
    async with (
        Engine(fast_settings(postgres_url), serve=True) as runner,
        Engine(fast_settings(postgres_url, poll_interval=SLOW_POLL), run_executions=False) as api,
    ):
        await runner.put_flow(two_steps(first, second))
        execution = await runner.start_execution("notify", "steps")
        await asyncio.wait_for(gate(first).started.wait(), PROMPTLY)

        async def follow_to_the_end() -> list[str]:
            return [event.type async for event in api.follow(execution.id)]

        following = asyncio.create_task(follow_to_the_end())
        gate(first).release.set()
        gate(second).release.set()
        seen = await asyncio.wait_for(following, PROMPTLY)
    assert seen[-1] == "workflow.completed"
