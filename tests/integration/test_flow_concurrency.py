"""A flow's ``concurrency`` limit: QUEUE holds new executions until a slot frees up,
CANCEL and FAIL end them at once. Real SQLite file, a serving engine (which gives
the slots), no mocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pausepoint.errors import Conflict
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings

TIMEOUT = 20.0
NAMESPACE = "kestra.concurrency"


def flow(behavior: str) -> str:
    return f"""
id: limited
namespace: {NAMESPACE}
concurrency:
  limit: 1
  behavior: {behavior}
tasks:
  - id: hold
    type: io.kestra.plugin.core.flow.Pause
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: done
"""


def paused(view: ExecutionView) -> bool:
    return view.state == "PAUSED"


async def state_of(engine: Engine, execution_id: str) -> str:
    return (await engine.execution(execution_id)).state


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[Engine]:
    async with Engine(fast_settings(db_path), serve=True) as engine:
        yield engine


@pytest.mark.parametrize(("behavior", "ended"), [("CANCEL", "CANCELLED"), ("FAIL", "FAILED")])
async def test_cancel_and_fail_end_an_execution_over_the_limit_at_once(
    server: Engine, behavior: str, ended: str
) -> None:
    await server.put_flow(flow(behavior))
    first = await server.start_execution(NAMESPACE, "limited")
    await server.wait(first.id, until=paused, timeout=TIMEOUT)

    second = await server.wait(
        (await server.start_execution(NAMESPACE, "limited")).id, timeout=TIMEOUT
    )
    assert second.state == ended
    assert second.task_runs == []
    reason = f"flow {NAMESPACE}.limited is at its concurrency limit (1 at once)"
    types = [event.type for event in await server.events(second.id)]
    assert types[-1] == ("workflow.cancelled" if behavior == "CANCEL" else "workflow.failed")
    if behavior == "FAIL":
        assert second.error == reason
    # The first one is untouched and, once it ends, the slot is free again.
    await server.resume(first.id)
    assert (await server.wait(first.id, timeout=TIMEOUT)).state == "COMPLETED"
    third = await server.start_execution(NAMESPACE, "limited")
    await server.wait(third.id, until=paused, timeout=TIMEOUT)


async def test_queue_holds_new_executions_and_starts_them_oldest_first(server: Engine) -> None:
    await server.put_flow(flow("QUEUE"))
    first = await server.start_execution(NAMESPACE, "limited")
    await server.wait(first.id, until=paused, timeout=TIMEOUT)
    second = await server.start_execution(NAMESPACE, "limited")
    third = await server.start_execution(NAMESPACE, "limited")

    async def queued(execution_id: str) -> bool:
        events = [event.type for event in await server.events(execution_id)]
        return "workflow.queued" in events

    await assert_eventually(lambda: queued(third.id), timeout=TIMEOUT, what="third queued")
    assert await state_of(server, second.id) == "QUEUED"
    assert await state_of(server, third.id) == "QUEUED"
    # A person cannot jump the queue: the slot is the control plane's to give.
    with pytest.raises(Conflict, match="waits for a free slot"):
        await server.resume(second.id)

    await server.resume(first.id)
    await server.wait(second.id, until=paused, timeout=TIMEOUT)
    assert await state_of(server, third.id) == "QUEUED"
    (release,) = await server.commands(second.id)
    assert (release.kind, release.actor, release.status) == (
        "resume",
        "system:concurrency",
        "applied",
    )

    await server.resume(second.id)
    assert (await server.wait(second.id, timeout=TIMEOUT)).state == "COMPLETED"
    await server.wait(third.id, until=paused, timeout=TIMEOUT)


async def test_a_queued_execution_can_be_cancelled_and_gives_its_place_up(server: Engine) -> None:
    await server.put_flow(flow("QUEUE"))
    first = await server.start_execution(NAMESPACE, "limited")
    await server.wait(first.id, until=paused, timeout=TIMEOUT)
    second = await server.start_execution(NAMESPACE, "limited")
    third = await server.start_execution(NAMESPACE, "limited")
    await server.cancel(second.id, reason="not needed")
    assert (await server.wait(second.id, timeout=TIMEOUT)).state == "CANCELLED"

    await server.resume(first.id)
    await server.wait(third.id, until=paused, timeout=TIMEOUT)
    assert (await server.execution(second.id)).task_runs == []


async def test_queued_executions_survive_a_restart(db_path: Path) -> None:
    async with Engine(fast_settings(db_path), serve=True) as engine:
        await engine.put_flow(flow("QUEUE"))
        first = await engine.start_execution(NAMESPACE, "limited")
        await engine.wait(first.id, until=paused, timeout=TIMEOUT)
        second = await engine.start_execution(NAMESPACE, "limited")
        assert await state_of(engine, second.id) == "QUEUED"
    async with Engine(fast_settings(db_path), serve=True) as engine:
        assert await state_of(engine, second.id) == "QUEUED"
        await engine.resume(first.id)
        await engine.wait(second.id, until=paused, timeout=TIMEOUT)


async def test_two_servers_starting_at_once_never_exceed_the_limit(db_path: Path) -> None:
    """Each server decides under the same lease in the database, not only its own lock."""
    settings = fast_settings(db_path)
    async with Engine(settings, serve=True) as first, Engine(settings, serve=True) as second:
        await first.put_flow(flow("QUEUE"))
        started = await asyncio.gather(
            *(engine.start_execution(NAMESPACE, "limited") for engine in [first, second] * 4)
        )

        async def settled() -> bool:
            states = [await state_of(first, view.id) for view in started]
            return states.count("PAUSED") == 1 and states.count("QUEUED") == 7

        await assert_eventually(settled, timeout=TIMEOUT, what="one running, seven queued")
