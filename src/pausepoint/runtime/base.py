"""The seam every runtime implements (embedded now, Temporal later)."""

from __future__ import annotations

from typing import Protocol

from pausepoint.store.records import CommandRecord


class Runtime(Protocol):
    """Runs executions; the control plane talks to runtimes only through this."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, execution_id: str) -> None:
        """A new execution was stored: run it (here, or wherever work is picked up)."""

    async def deliver(self, command: CommandRecord, commands_version: int | None = None) -> None:
        """A command was recorded durably: see that it is applied promptly."""

    async def adopt(self, execution_id: str) -> bool:
        """Run ``execution_id`` in this process if nobody else does; True if it runs here."""
        ...
