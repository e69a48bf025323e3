"""Kestra's bounds on a flow's concurrency queue: ``queueSize`` (and its other name
``queueLimit``) caps how many executions wait, ``duration`` caps how long one holds
its slot. Real SQLite file, a serving engine, no mocks; the engine's clock is one
the test moves, so nothing waits for time to pass.

What Kestra's FlowConcurrencyCaseTest states for flow-concurrency-queue-size: with
one running and one queued, a third is created CANCELLED at once (it never was
QUEUED), and the queued one runs when the first ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pausepoint.errors import FlowError
from pausepoint.flow import load_flow, load_flow_file
from pausepoint.models import ExecutionView
from pausepoint.service.concurrency import release_waiting
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings

TIMEOUT = 20.0
NAMESPACE = "kestra.concurrency"  # the Kestra flows' own namespace is io.kestra.tests
VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"


class Clock:
    """The engine's clock: it stands still unless the test moves it.

    Each reading is a hair later than the one before, so executions created one
    after the other still have distinct, ordered timestamps (the queue is oldest
    first); a durable timer or a slot's ``duration`` falls due only when the test
    moves the clock past it.
    """

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 1e-5
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bounded(concurrency: str, flow_id: str = "bounded") -> str:
    """A flow whose executions hold their slot at a Pause task until resumed."""
    return f"""
id: {flow_id}
namespace: {NAMESPACE}
concurrency:
{concurrency}
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


async def event_types(engine: Engine, execution_id: str) -> list[str]:
    return [event.type for event in await engine.events(execution_id)]


async def queued(engine: Engine, execution_id: str) -> None:
    """Wait until the execution waits on the flow's queue (its start was applied)."""

    async def waits() -> bool:
        return "workflow.queued" in await event_types(engine, execution_id)

    await assert_eventually(waits, timeout=TIMEOUT, what=f"{execution_id} queued")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(db_path: Path, clock: Clock) -> AsyncIterator[Engine]:
    async with Engine(fast_settings(db_path), serve=True, clock=clock) as engine:
        yield engine


# -- the queue bound ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["queueSize", "queueLimit"])
async def test_an_execution_arriving_at_a_full_queue_is_cancelled_and_never_queued(
    server: Engine, name: str
) -> None:
    await server.put_flow(bounded(f"  limit: 1\n  behavior: QUEUE\n  {name}: 1"))
    first = await server.start_execution(NAMESPACE, "bounded")
    assert (await server.wait(first.id, until=paused, timeout=TIMEOUT)).state == "PAUSED"
    second = await server.start_execution(NAMESPACE, "bounded")
    await queued(server, second.id)

    third = await server.wait(
        (await server.start_execution(NAMESPACE, "bounded")).id, timeout=TIMEOUT
    )
    assert third.state == "CANCELLED"
    assert third.task_runs == []
    events = await server.events(third.id)
    assert "workflow.queued" not in [event.type for event in events]
    assert events[-1].type == "workflow.cancelled"
    assert events[-1].data["by"] == "concurrency"
    assert events[-1].data["reason"] == (
        f"flow {NAMESPACE}.bounded is at its concurrency limit (1 at once) "
        "and its queue is full (1 waiting at most)"
    )
    assert await state_of(server, second.id) == "QUEUED"

    # The bound is on the queue as it is now: once the second runs, one may wait again.
    await server.resume(first.id)
    assert (await server.wait(first.id, timeout=TIMEOUT)).state == "COMPLETED"
    assert (await server.wait(second.id, until=paused, timeout=TIMEOUT)).state == "PAUSED"
    fourth = await server.start_execution(NAMESPACE, "bounded")
    await queued(server, fourth.id)
    assert await state_of(server, fourth.id) == "QUEUED"


async def test_a_queue_size_of_zero_lets_nothing_wait(server: Engine) -> None:
    await server.put_flow(bounded("  limit: 1\n  queueSize: 0"))
    first = await server.start_execution(NAMESPACE, "bounded")
    assert (await server.wait(first.id, until=paused, timeout=TIMEOUT)).state == "PAUSED"
    second = await server.wait(
        (await server.start_execution(NAMESPACE, "bounded")).id, timeout=TIMEOUT
    )
    assert second.state == "CANCELLED"
    assert "workflow.queued" not in await event_types(server, second.id)


async def test_a_cancelled_queued_execution_makes_room_in_the_queue(server: Engine) -> None:
    await server.put_flow(bounded("  limit: 1\n  queueSize: 1"))
    first = await server.start_execution(NAMESPACE, "bounded")
    assert (await server.wait(first.id, until=paused, timeout=TIMEOUT)).state == "PAUSED"
    second = await server.start_execution(NAMESPACE, "bounded")
    await queued(server, second.id)
    await server.cancel(second.id, reason="not needed")
    assert (await server.wait(second.id, timeout=TIMEOUT)).state == "CANCELLED"

    third = await server.start_execution(NAMESPACE, "bounded")
    await queued(server, third.id)
    assert await state_of(server, third.id) == "QUEUED"


# -- the slot's duration ----------------------------------------------------------------


async def test_a_slot_held_longer_than_duration_goes_to_the_next_queued_execution(
    server: Engine, clock: Clock
) -> None:
    await server.put_flow(bounded("  limit: 1\n  behavior: QUEUE\n  duration: PT1H"))
    first = await server.start_execution(NAMESPACE, "bounded")
    assert (await server.wait(first.id, until=paused, timeout=TIMEOUT)).state == "PAUSED"
    second = await server.start_execution(NAMESPACE, "bounded")
    await queued(server, second.id)
    # Within the hour the slot is the first one's: a release pass gives nothing away.
    assert await release_waiting(server) == 0
    assert await state_of(server, second.id) == "QUEUED"

    clock.advance(2 * 3600)
    assert (await server.wait(second.id, until=paused, timeout=TIMEOUT)).state == "PAUSED"
    # The first one lost its slot, not its run: it is still paused, and resumes to the end.
    assert await state_of(server, first.id) == "PAUSED"
    (release,) = await server.commands(second.id)
    assert (release.actor, release.status) == ("system:concurrency", "applied")
    await server.resume(first.id)
    assert (await server.wait(first.id, timeout=TIMEOUT)).state == "COMPLETED"

    # The second one took the slot when it was released: a third waits behind it.
    third = await server.start_execution(NAMESPACE, "bounded")
    await queued(server, third.id)
    assert await state_of(server, third.id) == "QUEUED"


async def test_a_new_execution_is_admitted_once_the_running_ones_slot_ran_out(
    server: Engine, clock: Clock
) -> None:
    await server.put_flow(bounded("  limit: 1\n  behavior: CANCEL\n  duration: PT1H"))
    first = await server.start_execution(NAMESPACE, "bounded")
    assert (await server.wait(first.id, until=paused, timeout=TIMEOUT)).state == "PAUSED"
    refused = await server.wait(
        (await server.start_execution(NAMESPACE, "bounded")).id, timeout=TIMEOUT
    )
    assert refused.state == "CANCELLED"

    clock.advance(2 * 3600)
    admitted = await server.start_execution(NAMESPACE, "bounded")
    assert (await server.wait(admitted.id, until=paused, timeout=TIMEOUT)).state == "PAUSED"
    assert await state_of(server, first.id) == "PAUSED"


# -- several servers on one database ----------------------------------------------------


async def test_two_servers_starting_at_once_never_queue_more_than_the_bound(
    db_path: Path, clock: Clock
) -> None:
    """Both decide under the flow's lease in the database, counting the queue there."""
    settings = fast_settings(db_path)
    async with (
        Engine(settings, serve=True, clock=clock) as first,
        Engine(settings, serve=True, clock=clock) as second,
    ):
        await first.put_flow(bounded("  limit: 1\n  queueSize: 2"))
        started = await asyncio.gather(
            *(engine.start_execution(NAMESPACE, "bounded") for engine in [first, second] * 4)
        )

        async def settled() -> bool:
            states = [await state_of(first, view.id) for view in started]
            return (states.count("PAUSED"), states.count("QUEUED"), states.count("CANCELLED")) == (
                1,
                2,
                5,
            )

        await assert_eventually(settled, timeout=TIMEOUT, what="1 running, 2 queued, 5 cancelled")


# -- Kestra's own flows -----------------------------------------------------------------


@pytest.mark.parametrize("flow_id", ["flow-concurrency-queue-size", "flow-concurrency-queue-limit"])
async def test_kestras_queue_bound_flows_run_as_kestra_says(
    server: Engine, clock: Clock, flow_id: str
) -> None:
    """FlowConcurrencyCaseTest.flowConcurrencyQueueSize, with the Sleep's time moved by hand."""
    await server.put_flow((VALIDS / f"{flow_id}.yml").read_text())
    namespace = "io.kestra.tests"
    first = await server.start_execution(namespace, flow_id)

    async def sleeping() -> bool:
        return "task.started" in await event_types(server, first.id)

    await assert_eventually(sleeping, timeout=TIMEOUT, what="the first one sleeping")
    second = await server.start_execution(namespace, flow_id)
    await queued(server, second.id)
    third = await server.wait(
        (await server.start_execution(namespace, flow_id)).id, timeout=TIMEOUT
    )
    assert third.state == "CANCELLED"
    assert await event_types(server, third.id) == ["workflow.cancelled"]

    clock.advance(3)  # the first one's Sleep (PT2S) is over
    assert (await server.wait(first.id, timeout=TIMEOUT)).state == "COMPLETED"

    async def started_sleeping() -> bool:
        return "task.started" in await event_types(server, second.id)

    await assert_eventually(started_sleeping, timeout=TIMEOUT, what="the second one sleeping")
    clock.advance(3)
    assert (await server.wait(second.id, timeout=TIMEOUT)).state == "COMPLETED"
    types = await event_types(server, second.id)
    assert types.index("workflow.queued") < types.index("workflow.released")
    assert types.index("workflow.released") < types.index("workflow.started")


def test_kestras_flows_load_with_their_bounds() -> None:
    for name in ("flow-concurrency-queue-size", "flow-concurrency-queue-limit"):
        concurrency = load_flow_file(VALIDS / f"{name}.yml").concurrency
        assert concurrency is not None
        assert (concurrency.limit, concurrency.behavior, concurrency.queue_size) == (1, "QUEUE", 1)
    concurrency = load_flow_file(VALIDS / "flow-concurrency-queue-duration.yml").concurrency
    assert concurrency is not None
    assert (concurrency.duration, concurrency.slot_seconds) == ("PT5S", 5.0)


# -- refused bounds ---------------------------------------------------------------------


def problems(concurrency: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(bounded(concurrency).lstrip("\n"), source="flow.yaml")
    return caught.value.message.splitlines()


@pytest.mark.parametrize(
    ("concurrency", "expected"),
    [
        (
            "  limit: 1\n  queueSize: -1",
            "flow.yaml:5 concurrency.queueSize: input should be greater than or equal to 0, got -1",
        ),
        (
            "  limit: 1\n  queueLimit: many",
            "flow.yaml:5 concurrency.queueLimit: expected an integer, got 'many'",
        ),
        (
            "  limit: 1\n  behavior: CANCEL\n  queueSize: 1",
            "flow.yaml:6 concurrency.queueSize: a queue bound only applies with behavior QUEUE "
            "(behavior is CANCEL): nothing waits, so remove it or use QUEUE",
        ),
        (
            "  limit: 1\n  queueSize: 1\n  queueLimit: 2",
            "flow.yaml:3 concurrency: queueSize and queueLimit are two names of the same bound: "
            "give one of them",
        ),
        (
            "  limit: 1\n  duration: 5 seconds",
            "flow.yaml:5 concurrency.duration: '5 seconds' is not an ISO-8601 duration "
            "(e.g. PT30S, PT5M, P1D)",
        ),
        (
            "  limit: 1\n  duration: PT0S",
            "flow.yaml:5 concurrency.duration: 'PT0S' is not longer than zero: "
            "a slot must be held a while",
        ),
    ],
)
def test_bad_bounds_are_refused_naming_the_line_and_field(concurrency: str, expected: str) -> None:
    assert problems(concurrency) == [expected]
