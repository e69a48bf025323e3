"""Task functions for the HTTP benchmark's flows (the server imports them from --flows)."""

from __future__ import annotations

import asyncio


async def sleep_long(seconds: float = 600.0) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}
