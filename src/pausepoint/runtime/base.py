"""The seam every runtime implements (embedded, Temporal)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pausepoint.engine.host import HostStep
from pausepoint.engine.interpreter import EngineEnv
from pausepoint.engine.model import CommandResult
from pausepoint.store.records import Checkpoint, CommandRecord, EventRecord, ExecutionRecord


@dataclass(frozen=True)
class NewExecution:
    """An execution just stored under this process's lease, with what running it needs."""

    record: ExecutionRecord
    state: dict[str, Any]  # its whole state (the record holds the stored core)
    env: EngineEnv


class RuntimeListener(Protocol):
    """Who hears what a runtime publishes (the service's event feed)."""

    def published(
        self, execution_id: str, events: list[EventRecord], results: Iterable[CommandResult]
    ) -> None:
        """A checkpoint's events and command results, as written by or seen in this process.

        An empty ``events`` is a wake-up: another process wrote events of the execution."""

    def following(self, execution_id: str) -> bool:
        """Whether anyone in this process waits for the execution's events."""
        ...

    def followed(self) -> Collection[str]:
        """The executions someone in this process waits for."""
        ...


def checkpoint_of(
    execution_id: str,
    step: HostStep,
    *,
    owner: str,
    updated_at: float,
    commands_version_seen: int | None = None,
) -> Checkpoint:
    """The checkpoint that writes ``step`` to the store under ``owner``'s lease."""
    return Checkpoint(
        execution_id=execution_id,
        owner=owner,
        status=step.status.value,
        state=step.state,
        started_at=step.started_at,
        ended_at=step.ended_at,
        updated_at=updated_at,
        task_runs=step.task_runs,
        events=[
            EventRecord(execution_id, seq, event.type, event.at, event.data)
            for seq, event in enumerate(step.events, step.first_seq)
        ],
        command_results=step.command_results,
        event_seq=step.event_seq,
        release=step.release,
        wake_at=step.wake_at,
        commands_version_seen=commands_version_seen,
    )


class Runtime(Protocol):
    """Runs executions; the control plane talks to runtimes only through this."""

    # Whether executions run inside this process, under its lease ``owner``.
    run_executions: bool
    owner: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def drain(self, grace: float) -> None:
        """Start nothing new; give work in flight here ``grace`` seconds to reach a checkpoint."""

    async def submit(self, execution_id: str, created: NewExecution | None = None) -> None:
        """A new execution was stored: run it (here, or wherever work is picked up).

        ``created`` is what the engine stored, when it stored it under this
        runtime's lease: running it here then needs nothing read back."""

    async def deliver(self, command: CommandRecord, commands_version: int | None = None) -> None:
        """A command was recorded durably: see that it is applied promptly."""

    async def adopt(self, execution_id: str) -> bool:
        """Run ``execution_id`` in this process if nobody else does; True if it runs here."""
        ...

    def owns(self, execution_id: str) -> bool:
        """Whether the execution runs in this process (its events are then published here)."""
        ...

    def watch(self, execution_id: str) -> None:
        """Bring ``execution_id`` back in this process when its timers fall due."""
