"""The event feed: the one place events and command outcomes reach whoever waits for them.

The runtime hands every checkpoint's events and command results to the feed
once (``EventFeed.published``); events written by another process (on
PostgreSQL, which notifies) arrive as an empty batch, a wake-up telling
followers to read the store. Everything that watches executions subscribes
here: ``Engine.follow`` and ``Engine.wait``, the SSE routes, the CLI's live
views, the organization-wide stream and the benchmarks. Nothing wraps the
runtime.

Subscribers are plain callables run in the event loop: a sink wakes nobody by
itself, so a hundred followers of one execution cost a call each per
checkpoint, not a task switch per event.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from pausepoint.models import LIVE_ONLY_SEQ
from pausepoint.store.records import EventRecord

__all__ = ["EventFeed", "EventRecord", "OrgSubscription"]

Sink = Callable[[list[EventRecord]], None]
OrgSink = Callable[[list[EventRecord] | None], None]
"""An organization subscriber: a batch of events, or None when events were dropped."""

ORG_BACKLOG_LIMIT = 10_000
ORG_CACHE_SIZE = 10_000


@dataclass(eq=False)
class OrgSubscription:
    org_id: str
    sink: OrgSink


@dataclass(eq=False)
class EventFeed:
    """Per execution and per organization subscribers of the events this process sees.

    Which organization an execution belongs to is looked up once (``org_of``)
    and cached; until then its events wait, in order, in a bounded backlog.
    """

    org_of: Callable[[str], Awaitable[str]]
    sinks: dict[str, set[Sink]] = field(default_factory=dict)
    orgs: dict[str, set[OrgSubscription]] = field(default_factory=dict)
    _org_cache: OrderedDict[str, str] = field(default_factory=OrderedDict)
    _backlog: deque[tuple[str, list[EventRecord]]] = field(default_factory=deque)
    _resolving: asyncio.Task[None] | None = None

    # -- what the runtime calls ------------------------------------------------------

    def followed(self) -> Collection[str]:
        """The executions someone here waits for."""
        return self.sinks.keys()

    def following(self, execution_id: str) -> bool:
        """Whether anyone here waits for ``execution_id``'s events."""
        return execution_id in self.sinks

    def published(self, execution_id: str, events: list[EventRecord]) -> None:
        """A checkpoint's events (or ``[]``: read the store, it changed)."""
        sinks = self.sinks.get(execution_id)
        if sinks:
            for sink in list(sinks):
                sink(events)
        if self.orgs and events:
            self._to_organization(execution_id, events)

    # -- one execution -----------------------------------------------------------------

    def subscribe(self, execution_id: str, sink: Sink) -> None:
        """Call ``sink`` with each batch of ``execution_id``'s events (in the loop; never block).

        A batch may hold live-only events (``seq == LIVE_ONLY_SEQ``, not stored) and
        is empty when another process wrote events: read them from the store."""
        self.sinks.setdefault(execution_id, set()).add(sink)

    def unsubscribe(self, execution_id: str, sink: Sink) -> None:
        sinks = self.sinks.get(execution_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self.sinks[execution_id]

    # -- every execution of an organization ---------------------------------------------

    def subscribe_organization(self, org_id: str, sink: OrgSink) -> OrgSubscription:
        subscription = OrgSubscription(org_id, sink)
        self.orgs.setdefault(org_id, set()).add(subscription)
        return subscription

    def unsubscribe_organization(self, subscription: OrgSubscription) -> None:
        subscriptions = self.orgs.get(subscription.org_id)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self.orgs[subscription.org_id]

    def _to_organization(self, execution_id: str, events: list[EventRecord]) -> None:
        events = [event for event in events if event.seq != LIVE_ONLY_SEQ]
        if not events:
            return
        org_id = self._org_cache.get(execution_id)
        if org_id is not None and not self._backlog:
            self._deliver(org_id, events)
            return
        if len(self._backlog) >= ORG_BACKLOG_LIMIT:
            for subscriptions in self.orgs.values():
                for subscription in subscriptions:
                    subscription.sink(None)
            self._backlog.clear()
            return
        self._backlog.append((execution_id, events))
        if self._resolving is None or self._resolving.done():
            self._resolving = asyncio.get_running_loop().create_task(self._resolve())

    def _deliver(self, org_id: str, events: list[EventRecord]) -> None:
        for subscription in list(self.orgs.get(org_id, ())):
            subscription.sink(events)

    async def _resolve(self) -> None:
        while self._backlog:
            execution_id, events = self._backlog[0]
            org_id = self._org_cache.get(execution_id)
            if org_id is None:
                org_id = await self.org_of(execution_id)
                self._org_cache[execution_id] = org_id
                if len(self._org_cache) > ORG_CACHE_SIZE:
                    self._org_cache.popitem(last=False)
            if self._backlog and self._backlog[0][0] == execution_id:
                self._backlog.popleft()
                self._deliver(org_id, events)
