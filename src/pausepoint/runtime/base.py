"""The seam every runtime implements (embedded, Temporal)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from pausepoint.engine.host import HostStep
from pausepoint.engine.interpreter import EngineEnv
from pausepoint.engine.model import CommandResult
from pausepoint.store.records import Checkpoint, CommandRecord, EventRecord, ExecutionRecord
from pausepoint.store.sql import SqlStore


@dataclass(frozen=True)
class NewExecution:
    """An execution to create: its record (no lease yet), its whole state, its flow and secrets."""

    record: ExecutionRecord
    state: dict[str, Any]  # its whole state (the record holds the stored core)
    env: EngineEnv

    def queued(self, record: ExecutionRecord) -> Checkpoint:
        """The checkpoint that stores ``record`` (this execution, leased or not) as QUEUED."""
        return Checkpoint(record.id, "", "QUEUED", {}, None, None, record.created_at)


class RuntimeListener(Protocol):
    """Who hears what a runtime publishes (the service's event feed)."""

    def published(self, execution_id: str, events: list[EventRecord]) -> None:
        """A checkpoint's events, as written by or seen in this process.

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
    claim_until: float | None = None,
) -> Checkpoint:
    """The checkpoint that writes ``step`` to the store under ``owner``'s lease (taking
    it until ``claim_until`` if given, from the execution as of event ``step.first_seq - 1``)."""
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
        claim_until=claim_until,
        claim_from_seq=step.first_seq - 1,
    )


class Runtime(Protocol):
    """Runs executions; the control plane talks to runtimes only through this.

    Leases, timers, workers and activities are each runtime's own business: the
    control plane hands over new executions and accepted commands, and hears
    back through its listener (``RuntimeListener``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def drain(self, grace: float) -> None:
        """Start nothing new; give work in flight here ``grace`` seconds to reach a checkpoint."""

    async def submit(self, new: NewExecution) -> bool:
        """Store the new execution and have it run; False (nothing done) if its id exists."""
        ...

    async def deliver(
        self, command: CommandRecord, commands_version: int, *, wait: float
    ) -> CommandRecord:
        """A command was recorded durably: have it applied, and wait up to ``wait`` seconds
        for that. Returns the command as it then stands (still pending if it took longer)."""
        ...

    def runs_here(self, execution_id: str) -> bool:
        """Whether the execution runs in this process now (its events are then live here)."""
        ...


# A command's caller looks for its outcome in the store at most this far apart.
SETTLE_POLL_CEILING = 1.0


def settled_record(command: CommandRecord, result: CommandResult, at: float) -> CommandRecord:
    """``command`` as the store holds it once ``result`` was checkpointed."""
    return dataclasses.replace(
        command,
        status="applied" if result.applied else "rejected",
        message=result.message,
        state_after=result.status.value,
        applied_at=at,
    )


async def settle(
    store: SqlStore,
    command: CommandRecord,
    wait: float,
    *,
    clock: Callable[[], float],
    interval: float,
    outcome_within: Callable[[float], Awaitable[CommandResult | None]],
) -> CommandRecord:
    """Wait up to ``wait`` seconds for ``command``'s outcome: as ``outcome_within(seconds)``
    reports it (a runtime that applies it here knows first), else as the store shows it.

    The store is asked less and less often: thousands of callers waiting at once must
    not add a read each per interval to the work they wait for."""
    deadline = clock() + wait
    while (remaining := deadline - clock()) > 0:
        step = min(remaining, interval)
        interval = min(interval * 2, SETTLE_POLL_CEILING)
        result = await outcome_within(step)
        if result is not None:
            return settled_record(command, result, clock())
        latest = await store.get_command(command.id)
        if latest is not None and latest.status != "pending":
            return latest
    return command
