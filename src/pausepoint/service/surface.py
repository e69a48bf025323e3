"""What ``Engine`` adds to be a :class:`~pausepoint.surface.ControlSurface`, and its caller view.

``SurfaceMixin`` is built only on the engine's public methods: it names the
operations the way the HTTP client does and answers with the client's public
models, so that code written against the protocol runs unchanged in-process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pausepoint.engine.interpreter import iso
from pausepoint.errors import NotFound
from pausepoint.models import (
    CommandView,
    EventView,
    ExecutionView,
)
from pausepoint.service.feed import EventFeed
from pausepoint.service.views import (
    decode_cursor,
    encode_cursor,
    event_view,
    execution_summary,
    flow_record_view,
)
from pausepoint.wire import ExecutionPage, FlowRecordView, FlowSummary

if TYPE_CHECKING:
    from pausepoint.config import Settings
    from pausepoint.service.auth import Authenticator
    from pausepoint.store.access import ApiKeyRecord
    from pausepoint.store.records import EventRecord, ExecutionRecord, FlowRecord


class _KeyStore(Protocol):
    async def list_api_keys(self, org_id: str | None = ...) -> list[ApiKeyRecord]: ...
    async def revoke_api_key(self, key_id: str, now: float, org_id: str | None = ...) -> bool: ...


class _EngineCore(Protocol):
    """The part of ``Engine`` the mixin builds on."""

    settings: Settings
    feed: EventFeed
    clock: Callable[[], float]

    @property
    def store(self) -> _KeyStore: ...
    @property
    def authenticator(self) -> Authenticator: ...

    async def put_flow(self, source: str, *, source_name: str = ...) -> FlowRecord: ...
    async def put_flow_file(self, path: str | Path) -> FlowRecord: ...
    async def list_flows(self) -> list[FlowRecord]: ...
    async def list_executions(
        self,
        *,
        states: Sequence[str] = ...,
        namespace: str | None = ...,
        flow_id: str | None = ...,
        labels: dict[str, str] | None = ...,
        limit: int = ...,
        before: tuple[float, str] | None = ...,
        parent_id: str | None = ...,
        root_id: str | None = ...,
    ) -> list[ExecutionRecord]: ...
    async def commands(self, execution_id: str) -> list[CommandView]: ...
    async def execution(self, execution_id: str) -> ExecutionView: ...
    async def events(self, execution_id: str, *, after: int = ...) -> list[EventView]: ...
    def follow(self, execution_id: str, *, after: int = ...) -> AsyncIterator[EventView]: ...


class SurfaceMixin:
    """The :class:`~pausepoint.surface.ControlSurface` methods ``Engine`` does not define."""

    async def apply_flow(self: _EngineCore, source: str | os.PathLike[str]) -> FlowRecordView:
        """Create or update a flow from YAML text, or from the YAML file at a path."""
        if isinstance(source, str):
            record = await self.put_flow(source)
        else:
            record = await self.put_flow_file(Path(source))
        return flow_record_view(record)

    async def flows(self: _EngineCore) -> list[FlowSummary]:
        """The latest revision of every flow of this organization."""

        return [
            FlowSummary(
                namespace=r.namespace,
                id=r.flow_id,
                revision=r.revision,
                created_at=iso(r.created_at),
            )
            for r in await self.list_flows()
        ]

    async def execution_page(
        self: _EngineCore,
        *,
        states: Sequence[str] = (),
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> ExecutionPage:
        """One page of executions, newest first, as the HTTP API pages them; ``parent_id``
        keeps the children of that execution, ``root_id`` all its descendants."""

        records = await self.list_executions(
            states=states,
            namespace=namespace,
            flow_id=flow_id,
            labels=labels,
            parent_id=parent_id,
            root_id=root_id,
            limit=limit + 1,  # one more tells whether there is a next page
            before=decode_cursor(cursor) if cursor else None,
        )
        page = records[:limit]
        next_cursor = encode_cursor(page[-1]) if len(records) > limit else None
        return ExecutionPage(items=[execution_summary(r) for r in page], next_cursor=next_cursor)

    async def audit(self: _EngineCore, execution_id: str) -> list[CommandView]:
        """Every control command accepted for the execution, oldest first."""
        return await self.commands(execution_id)

    # -- operating the database (the CLI's `keys`: every organization at once) ---------

    async def api_keys_of(self: _EngineCore, org_id: str | None = None) -> list[ApiKeyRecord]:
        """The API keys of ``org_id``, or of every organization (never the keys themselves)."""
        return await self.store.list_api_keys(org_id)

    async def revoke_key_of_any_org(self: _EngineCore, key_id: str) -> None:
        """Revoke an API key whichever organization owns it; ``NotFound`` if none is active."""
        if not await self.store.revoke_api_key(key_id, self.clock()):
            raise NotFound(f"API key {key_id} not found (or already revoked)")
        self.authenticator.forget_verified()

    # -- this process's part -------------------------------------------------------

    def live_events(self: _EngineCore, execution_id: str) -> LiveEvents:
        """The events published in this process from now on, live-only ones included.

        Use as a context manager; the stored events are read with ``follow``.
        """
        return LiveEvents(self.feed, execution_id)


class LiveEvents:
    """Events published in this process for one execution, as a queue of ``EventView``."""

    def __init__(self, feed: EventFeed, execution_id: str) -> None:
        self._feed = feed
        self._execution_id = execution_id
        self.queue: asyncio.Queue[EventView] = asyncio.Queue()

    def _published(self, events: list[EventRecord]) -> None:

        for event in events:
            self.queue.put_nowait(event_view(event))

    def __enter__(self) -> LiveEvents:
        self._feed.subscribe(self._execution_id, self._published)
        return self

    def __exit__(self, *exc: object) -> None:
        self._feed.unsubscribe(self._execution_id, self._published)
