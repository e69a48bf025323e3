"""Task bodies for the crash test: slow enough that the server dies mid-flight.

The test copies this file next to the flow it serves (``server --flows DIR``
puts DIR in ``python_paths``), so the server subprocess imports it as
``flows_crash``.
"""

from __future__ import annotations

import asyncio


async def nap(seconds: float) -> dict[str, float]:
    await asyncio.sleep(seconds)  # the task's work: in flight when the server is killed
    return {"slept": seconds}
