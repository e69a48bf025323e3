"""Task bodies for the recovery tests: slow enough to be caught in flight."""

from __future__ import annotations

import asyncio
from typing import Any

runs: list[str] = []


async def slow(seconds: float, pausepoint: Any) -> dict[str, str]:
    runs.append(pausepoint.task_run_id)
    await asyncio.sleep(seconds)  # the task's work: in flight when the runtime dies
    return {"run": pausepoint.task_run_id}
