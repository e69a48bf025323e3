"""Task bodies the HTTP tests' ``python`` tasks call, so that each test decides the timing.

The server under test runs in the test's own event loop, so :func:`step` can
wait on an :class:`asyncio.Event` the test releases. Tests import this module
by its top-level name (the directory is in ``Settings.python_paths``), so the
gates they hold are the ones the tasks wait on.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any


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


def new_key(name: str = "gate") -> str:
    """A gate name no other test uses."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


def release_all() -> None:
    """Let every task still waiting finish (teardown)."""
    for held in GATES.values():
        held.release.set()


async def step(key: str) -> dict[str, Any]:
    """Start, then wait until the test releases ``key``."""
    current = gate(key)
    current.starts += 1
    current.started.set()
    try:
        await current.release.wait()
    except asyncio.CancelledError:
        current.cancellations += 1
        raise
    current.finishes += 1
    return {"key": key}


def boom(message: str = "boom") -> None:
    """Fail the task run."""
    raise ValueError(message)
