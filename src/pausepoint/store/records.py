"""Rows as the rest of pausepoint sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FlowRecord:
    org_id: str
    namespace: str
    flow_id: str
    revision: int
    source: str
    created_at: float


@dataclass(frozen=True)
class ExecutionRecord:
    id: str
    org_id: str
    namespace: str
    flow_id: str
    flow_revision: int
    status: str
    state: dict[str, Any]
    labels: dict[str, str]
    created_at: float
    updated_at: float
    started_at: float | None
    ended_at: float | None
    event_seq: int
    lease_owner: str | None
    lease_expires_at: float | None
    commands_version: int


@dataclass(frozen=True)
class CommandRecord:
    id: str
    execution_id: str
    seq: int
    kind: str
    payload: dict[str, Any]
    actor: str
    reason: str | None
    idempotency_key: str | None
    request_id: str | None
    status: str
    message: str | None
    state_before: str | None
    state_after: str | None
    created_at: float
    applied_at: float | None
    traceparent: str | None = None  # the caller's W3C trace context, as version 00


@dataclass(frozen=True)
class EventRecord:
    execution_id: str
    seq: int
    type: str
    at: float
    data: dict[str, Any]


@dataclass
class Checkpoint:
    """Everything one engine step changed, written in one transaction."""

    execution_id: str
    owner: str
    status: str
    state: dict[str, Any]
    started_at: float | None
    ended_at: float | None
    updated_at: float
    task_runs: list[dict[str, Any]] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    # (command id, applied, message, state after)
    command_results: list[tuple[str, bool, str, str]] = field(default_factory=list)
    event_seq: int = 0
    # Set when the runtime lets go of the execution (paused or finished).
    release: bool = False
    wake_at: float | None = None
    commands_version_seen: int | None = None
    # Set when the writer does not hold the lease yet: the checkpoint takes it until
    # ``claim_until``, if it is free (or expired, or already the writer's) and nobody
    # wrote the execution since its event ``claim_from_seq`` (the writer's copy).
    claim_until: float | None = None
    claim_from_seq: int = 0


class LeaseLost(Exception):
    """Another process took this execution over; stop running it here."""
