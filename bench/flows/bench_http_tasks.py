"""Task functions for the HTTP benchmark's flows (the server imports them from --flows)."""

from __future__ import annotations

import asyncio


async def sleep_long(seconds: float = 600.0) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def pace(ms: float = 10.0) -> dict[str, float]:
    """A step that takes ``ms`` milliseconds: a workload that does not saturate the engine."""
    await asyncio.sleep(ms / 1000)
    return {"ms": ms}
