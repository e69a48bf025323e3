"""Task functions the benchmarks call (imported through Settings.python_paths)."""

from __future__ import annotations

import asyncio
import time

step_started: list[float] = []
step_ended: list[float] = []
started_event: asyncio.Event | None = None


async def noop() -> None:
    """A step that does nothing (pausepoint runs a python task as a Temporal activity)."""


async def mark_start() -> dict[str, float]:
    now = time.perf_counter()
    step_started.append(now)
    if started_event is not None:
        started_event.set()
    return {"at": now}


async def work_50ms() -> dict[str, float]:
    await asyncio.sleep(0.05)
    now = time.perf_counter()
    step_ended.append(now)
    return {"ended": now}
