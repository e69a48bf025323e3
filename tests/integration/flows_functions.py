"""Functions that `python` tasks call in the control tests, so that tests decide the timing.

Each call of :func:`step` waits on the :class:`Gate` named by its ``key`` until
the test releases it. The functions are ``async``: they run on the test's
event loop, receive ``asyncio.CancelledError`` when their task run is
cancelled, and let the test see every start, finish and cancellation.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

MODULE = "tests.integration.flows_functions"


@dataclass
class Gate:
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    starts: int = 0
    finishes: int = 0
    cancellations: int = 0


GATES: dict[str, Gate] = {}


def gate(key: str) -> Gate:
    """The gate called ``key`` (created on first use)."""
    return GATES.setdefault(key, Gate())


def new_key(name: str) -> str:
    """A gate name no other test uses."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def step(key: str, result: Any = None) -> dict[str, Any]:
    """Start, wait until the test releases ``key``, then return ``result``."""
    current = gate(key)
    current.starts += 1
    current.started.set()
    try:
        await current.release.wait()
    except asyncio.CancelledError:
        current.cancellations += 1
        raise
    current.finishes += 1
    return {"key": key, "result": result}


def echo(value: Any) -> dict[str, Any]:
    """Hand back what the flow rendered, to check what a task saw."""
    return {"value": value}
