"""On PostgreSQL, an API server hears of the events workers write at once, not at its next poll."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pausepoint.service.engine import Engine

FLOW = """
id: quick
namespace: temporal
tasks:
  - id: one
    type: return
    format: one
  - id: two
    type: return
    format: two
"""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"poll_interval": 60.0}  # a poll would come far too late for this test


async def test_followers_get_worker_events_without_waiting_for_a_poll(engine: Engine) -> None:
    await engine.put_flow(FLOW)
    execution = await engine.start_execution("temporal", "quick")

    async def follow_to_the_end() -> list[str]:
        return [event.type async for event in engine.follow(execution.id)]

    seen = await asyncio.wait_for(follow_to_the_end(), timeout=20)
    assert seen[0] == "workflow.started"
    assert seen[-1] == "workflow.completed"
