"""Server-sent events: one execution's log, or every execution of an organization.

Frames are ``id: <id>``, ``event: <type>``, ``data: <EventView as JSON>``; a
comment line (``: keep-alive``) is sent when nothing else was for a while.

Streams never hold the engine up. Live events reach a stream through the
runtime's in-process notifications and are copied into a small bounded buffer
by a pump task, so a client that stops reading costs at most that buffer: once
it overflows, the stream is told to end and the client resumes with
``Last-Event-ID``. The store is read only to catch up (at the start, after a
gap, or every ``store_poll`` seconds while the execution does not run in this
process, for events written by other processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from pausepoint.models import TERMINAL_EVENT_TYPES, EventView
from pausepoint.runtime.embedded import EmbeddedRuntime
from pausepoint.service.engine import Engine, event_view
from pausepoint.store.records import EventRecord

KEEPALIVE_SECONDS = 15.0
STORE_POLL_SECONDS = 2.0
MAX_BUFFERED_EVENTS = 1000
CATCH_UP_PAGE = 500
TERMINAL_STATES = frozenset(
    {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}
)


# Live events wait this long after a wake-up so that bursts go out in one write.
COALESCE_SECONDS = 0.02


@dataclass(frozen=True)
class StreamTiming:
    """How often a stream sends keep-alives and looks in the store (tests shrink them)."""

    keepalive: float = KEEPALIVE_SECONDS
    store_poll: float = STORE_POLL_SECONDS
    max_buffered: int = MAX_BUFFERED_EVENTS
    coalesce: float = COALESCE_SECONDS


def frame(event_id: str | int, event: EventView) -> str:
    return f"id: {event_id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


_FRAMES: OrderedDict[tuple[str, int], str] = OrderedDict()
FRAME_CACHE_SIZE = 4096


def live_frame(record: EventRecord) -> str:
    """The frame of a live event, serialised once however many clients follow it."""
    key = (record.execution_id, record.seq)
    cached = _FRAMES.get(key)
    if cached is None:
        cached = frame(record.seq, event_view(record))
        _FRAMES[key] = cached
        if len(_FRAMES) > FRAME_CACHE_SIZE:
            _FRAMES.popitem(last=False)
    return cached


def comment(text: str) -> str:
    return f": {text}\n\n"


class _Inbox:
    """A bounded buffer of live events and the signal that something happened."""

    def __init__(self, limit: int) -> None:
        self.events: deque[EventRecord] = deque()
        self.limit = limit
        self.overflowed = False
        self.wake = asyncio.Event()

    def put(self, events: Iterable[EventRecord]) -> None:
        if self.overflowed:
            return
        for event in events:
            if len(self.events) >= self.limit:
                self.overflow()
                return
            self.events.append(event)
        self.wake.set()

    def overflow(self) -> None:
        self.overflowed = True
        self.events.clear()
        self.wake.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for news; True if something arrived before ``timeout``."""
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)
            woken = True
        self.wake.clear()
        return woken


async def execution_events(
    engine: Engine, execution_id: str, *, after: int, timing: StreamTiming
) -> AsyncIterator[str]:
    """SSE frames of ``execution_id`` after sequence ``after``, live; ends after the terminal one.

    ``engine`` must be scoped to the caller's organization: ``NotFound`` is raised
    here, before any response starts, for unknown ids and other organizations.
    """
    await engine.state(execution_id)
    return _execution_frames(engine, execution_id, after, timing)


async def _execution_frames(
    engine: Engine, execution_id: str, after: int, timing: StreamTiming
) -> AsyncIterator[str]:
    runtime = engine.runtime
    inbox = _Inbox(timing.max_buffered)
    runtime.add_sink(execution_id, inbox.put)
    loop = asyncio.get_running_loop()
    last_sent = last_poll = loop.time()
    try:
        while True:
            # Catch up from the store: at the start, after a gap, on the poll tick.
            while True:
                batch = await engine.events(execution_id, after=after, limit=CATCH_UP_PAGE)
                for event in batch:
                    after = event.seq
                    yield frame(event.seq, event)
                    if event.is_terminal:
                        return
                if len(batch) < CATCH_UP_PAGE:
                    break
            last_poll = last_sent = loop.time()
            if (await engine.state(execution_id)).state in TERMINAL_STATES:
                # Terminal with no terminal event after `after`: nothing more will come.
                if not await engine.events(execution_id, after=after, limit=1):
                    return
                continue
            caught_up = True
            while caught_up:
                # Everything buffered goes out in one write: one send per burst, not per event.
                burst: list[str] = []
                finished = False
                while inbox.events and caught_up:
                    record = inbox.events.popleft()
                    if record.seq <= after:
                        continue
                    if record.seq != after + 1:
                        caught_up = False  # a gap: read the missing events from the store
                        inbox.events.appendleft(record)
                        break
                    after = record.seq
                    burst.append(live_frame(record))
                    if record.type in TERMINAL_EVENT_TYPES:
                        finished = True
                        break
                if burst:
                    yield "".join(burst)
                    last_sent = loop.time()
                if finished:
                    return
                if not caught_up:
                    break
                if inbox.overflowed:
                    yield comment("too far behind: reconnect with Last-Event-ID")
                    return
                now = loop.time()
                if now - last_poll >= timing.store_poll:
                    if not runtime.owns(execution_id):
                        break
                    # Run here: every event reaches the inbox, the store has nothing more.
                    last_poll = now
                if now - last_sent >= timing.keepalive:
                    yield comment("keep-alive")
                    last_sent = loop.time()
                    continue
                woken = await inbox.wait(
                    min(timing.keepalive - (now - last_sent), timing.store_poll - (now - last_poll))
                )
                if woken and timing.coalesce:
                    # Let a burst of checkpoints gather: one write for many events keeps
                    # a hundred followers from costing the engine a hundred wake-ups each.
                    await asyncio.sleep(timing.coalesce)
    finally:
        runtime.remove_sink(execution_id, inbox.put)


# -- every execution of an organization ---------------------------------------------------


@dataclass(eq=False)
class _OrgSubscription:
    org_id: str
    inbox: _Inbox


@dataclass
class EventHub:
    """A process-wide feed of the events this process's runtime publishes, per organization.

    The runtime notifies per execution only, so the hub wraps its ``published``
    hook. Which organization an execution belongs to is looked up once (and
    cached); until then its events wait, in order, in a bounded backlog.
    """

    engine: Engine
    subscriptions: dict[str, set[_OrgSubscription]] = field(default_factory=dict)
    orgs: OrderedDict[str, str] = field(default_factory=OrderedDict)
    backlog: deque[tuple[str, list[EventRecord]]] = field(default_factory=deque)
    backlog_limit: int = 10_000
    cache_size: int = 10_000
    _resolving: asyncio.Task[None] | None = None

    def publish(self, execution_id: str, events: list[EventRecord]) -> None:
        if not self.subscriptions or not events:
            return
        org_id = self.orgs.get(execution_id)
        if org_id is not None and not self.backlog:
            self._deliver(org_id, events)
            return
        if len(self.backlog) >= self.backlog_limit:
            for subscriptions in self.subscriptions.values():
                for subscription in subscriptions:
                    subscription.inbox.overflow()
            self.backlog.clear()
            return
        self.backlog.append((execution_id, list(events)))
        if self._resolving is None or self._resolving.done():
            self._resolving = asyncio.get_running_loop().create_task(self._resolve())

    def _deliver(self, org_id: str, events: list[EventRecord]) -> None:
        for subscription in self.subscriptions.get(org_id, ()):
            subscription.inbox.put(events)

    async def _resolve(self) -> None:
        while self.backlog:
            execution_id, events = self.backlog[0]
            org_id = self.orgs.get(execution_id)
            if org_id is None:
                record = await self.engine.store.get_execution(execution_id)
                org_id = record.org_id if record is not None else ""
                self.orgs[execution_id] = org_id
                if len(self.orgs) > self.cache_size:
                    self.orgs.popitem(last=False)
            if self.backlog and self.backlog[0][0] == execution_id:
                self.backlog.popleft()
                self._deliver(org_id, events)

    def subscribe(self, org_id: str, limit: int) -> _OrgSubscription:
        subscription = _OrgSubscription(org_id, _Inbox(limit))
        self.subscriptions.setdefault(org_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: _OrgSubscription) -> None:
        subscriptions = self.subscriptions.get(subscription.org_id)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self.subscriptions[subscription.org_id]


_hubs: weakref.WeakKeyDictionary[EmbeddedRuntime, EventHub] = weakref.WeakKeyDictionary()


def event_hub(engine: Engine) -> EventHub:
    """The hub of ``engine``'s runtime, installed on first use (once per runtime)."""
    runtime = engine.runtime
    hub = _hubs.get(runtime)
    if hub is None:
        hub = EventHub(engine)
        original = runtime.published

        def published(execution_id: str, events: list[EventRecord], results: Any) -> None:
            original(execution_id, events, results)
            hub.publish(execution_id, events)

        runtime.published = published  # type: ignore[method-assign]
        _hubs[runtime] = hub
    return hub


async def organization_events(
    engine: Engine, hub: EventHub, *, timing: StreamTiming
) -> AsyncIterator[str]:
    """SSE frames of every execution of ``engine.org_id``, live (ids ``<execution_id>:<seq>``)."""
    subscription = hub.subscribe(engine.org_id, timing.max_buffered)
    inbox = subscription.inbox
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    try:
        yield comment("connected")
        while True:
            while inbox.events:
                record = inbox.events.popleft()
                yield frame(f"{record.execution_id}:{record.seq}", event_view(record))
                last_sent = loop.time()
            if inbox.overflowed:
                yield comment("too far behind: reconnect")
                return
            idle = loop.time() - last_sent
            if idle >= timing.keepalive:
                yield comment("keep-alive")
                last_sent = loop.time()
                continue
            await inbox.wait(timing.keepalive - idle)
    finally:
        hub.unsubscribe(subscription)
