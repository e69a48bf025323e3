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


@pytest.mark.parametrize(("freeze", "ends"), [(True, "COMPLETED"), (False, "TIMED_OUT")])
async def test_a_frozen_pause_outlasts_the_timeout_and_a_running_one_does_not(
    db_path: Path, freeze: bool, ends: str
) -> None:
    async with Engine(fast_settings(db_path)) as engine:
        await engine.put_flow(TIMED)
        started = await engine.start_execution("clock", "timed")
        await engine.wait(started.id, until=lambda v: bool(v.task_runs), timeout=TIMEOUT)
        await engine.pause(started.id, freeze_clock=freeze)
        await engine.wait(
            started.id, until=lambda v: v.state in ("PAUSED", "TIMED_OUT"), timeout=TIMEOUT
        )
    await asyncio.sleep(2.5)  # held longer than the whole timeout, the process gone
    async with Engine(fast_settings(db_path), serve=True) as engine:
        if freeze:
            assert (await engine.execution(started.id)).state == "PAUSED"
            await engine.resume(started.id)
        view = await engine.wait(started.id, timeout=TIMEOUT)
        assert view.state == ends, view.error
        events = [event.type for event in await engine.events(started.id)]
        if freeze:
            assert "clock.frozen" in events and "clock.resumed" in events


@pytest.mark.parametrize(("freeze", "ends"), [(True, "COMPLETED"), (False, "TIMED_OUT")])
async def test_a_pause_held_past_the_timeout_ends_as_its_clock_policy_says(
    engine: Engine, freeze: bool, ends: str
) -> None:
    await engine.put_flow(TIMED)
    started = await engine.start_execution("clock", "timed")
    # Its timeout runs from its start: pause once it started (not while still QUEUED).
    await engine.wait(started.id, until=lambda v: bool(v.task_runs), timeout=TIMEOUT)
    await engine.pause(started.id, freeze_clock=freeze)
    await engine.wait(
        started.id, until=lambda v: v.state in ("PAUSED", "TIMED_OUT"), timeout=TIMEOUT
    )
    await asyncio.sleep(2.5)
    if freeze:
        assert (await engine.execution(started.id)).state == "PAUSED"
        await engine.resume(started.id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == ends, view.error
