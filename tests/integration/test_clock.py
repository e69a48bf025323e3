"""The clock policy on the real embedded runtime (a real SQLite file, real time).

A pause that freezes the clock keeps the execution's timeout from running out
while it is held, across a restart of the process; with RUN it times out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings

TIMEOUT = 20.0

TIMED = """
id: timed
namespace: clock
timeout: PT2S
tasks:
  - id: first
    type: sleep
    duration: PT0.5S
  - id: second
    type: log
    message: done
"""


async def paused_once_started(engine: Engine, freeze: bool) -> str:
    """Start the timed flow and pause it once it started (its timeout runs from its start,
    not while it is still QUEUED); the execution's id, PAUSED (or already TIMED_OUT)."""
    await engine.put_flow(TIMED)
    started = await engine.start_execution("clock", "timed")
    await engine.wait(started.id, until=lambda v: bool(v.task_runs), timeout=TIMEOUT)
    await engine.pause(started.id, freeze_clock=freeze)
    await engine.wait(
        started.id, until=lambda v: v.state in ("PAUSED", "TIMED_OUT"), timeout=TIMEOUT
    )
    return started.id


async def resumed_to_the_end(engine: Engine, execution_id: str, freeze: bool) -> str:
    """Resume it if its clock stood still (it must still be PAUSED); the state it ends in."""
    if freeze:
        assert (await engine.execution(execution_id)).state == "PAUSED"
        await engine.resume(execution_id)
    view = await engine.wait(execution_id, timeout=TIMEOUT)
    return view.state


@pytest.mark.parametrize(("freeze", "ends"), [(True, "COMPLETED"), (False, "TIMED_OUT")])
async def test_a_frozen_pause_outlasts_the_timeout_and_a_running_one_does_not(
    db_path: Path, freeze: bool, ends: str
) -> None:
    async with Engine(fast_settings(db_path)) as engine:
        execution_id = await paused_once_started(engine, freeze)
    await asyncio.sleep(2.5)  # held longer than the whole timeout, the process gone
    async with Engine(fast_settings(db_path), serve=True) as engine:
        assert await resumed_to_the_end(engine, execution_id, freeze) == ends
        events = [event.type for event in await engine.events(execution_id)]
        if freeze:
            assert "clock.frozen" in events and "clock.resumed" in events


@pytest.mark.parametrize(("freeze", "ends"), [(True, "COMPLETED"), (False, "TIMED_OUT")])
async def test_a_pause_held_past_the_timeout_ends_as_its_clock_policy_says(
    engine: Engine, freeze: bool, ends: str
) -> None:
    execution_id = await paused_once_started(engine, freeze)
    await asyncio.sleep(2.5)
    assert await resumed_to_the_end(engine, execution_id, freeze) == ends
