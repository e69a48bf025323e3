"""Server-sent events: one execution's log, or every execution of an organization.

Frames are ``id: <id>``, ``event: <type>``, ``data: <EventView as JSON>``; a
comment line (``: keep-alive``) is sent when nothing else was for a while.

Streams never hold the engine up. The live events of an execution reach this
process's followers through one shared channel: the runtime hands it each
checkpoint's events once, they are rendered once, and the followers (each just
a cursor) send them in coalesced bursts, so a hundred followers cost the engine
about what a few do. A follower that falls behind the channel's bounded window
reads the gap from the store and carries on; nothing is skipped. The store is
read only to catch up (at the start, after a gap, or every ``store_poll``
seconds while the execution does not run in this process, for events written by
other processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pausepoint.models import LIVE_ONLY_SEQ, TERMINAL_EVENT_TYPES, EventView
from pausepoint.runtime.base import Runtime
from pausepoint.service.engine import Engine, event_view
from pausepoint.store.records import EventRecord

KEEPALIVE_SECONDS = 15.0
STORE_POLL_SECONDS = 2.0
MAX_BUFFERED_EVENTS = 1000
# Reading from the store to catch up: pages of about this many bytes of frames (at
# most CATCH_UP_PAGE events), sized by the events seen last; the first page of a
# stream with nothing to judge by is small.
CATCH_UP_BYTES = 256 * 1024
CATCH_UP_FIRST_PAGE = 50
CATCH_UP_PAGE = 500
TERMINAL_STATES = frozenset(
    {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}
)


# Live events wait this long after a wake-up so that bursts go out in one write.
COALESCE_SECONDS = 0.02
# All followers of one execution together send at most about this many writes per
# second: the wait grows with their number, so a crowd costs the engine what ten do.
FANOUT_WRITES_PER_SECOND = 500.0


@dataclass(frozen=True)
class StreamTiming:
    """How often a stream sends keep-alives and looks in the store (tests shrink them)."""

    keepalive: float = KEEPALIVE_SECONDS
    store_poll: float = STORE_POLL_SECONDS
    max_buffered: int = MAX_BUFFERED_EVENTS
    coalesce: float = COALESCE_SECONDS


def frame(event_id: str | int, event: EventView) -> str:
    return f"id: {event_id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


def live_only_frame(record: EventRecord) -> str:
    """A frame without an id: it is not stored, so nobody can resume from it."""
    data = {"execution_id": record.execution_id, "type": record.type, "data": record.data}
    return f"event: {record.type}\ndata: {json.dumps(data)}\n\n"


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


class _Channel:
    """The recent live events of one execution, shared by everyone following it here.

    The runtime hands each checkpoint's events to the channel once, however many
    followers there are: they are rendered to frames once, kept in a bounded
    window, and one future wakes every waiting follower. Each follower only keeps
    a cursor; one that falls behind the window reads the gap from the store.

    Live-only events (streamed tokens) have no sequence number: each is kept with
    the stored event that follows it (or in ``tail`` until one does), so followers
    get them in order, once, even when both arrive within one coalescing wait.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 1)
        self.first_seq = 0  # seq of frames[0]; 0 while empty
        self.frames: list[str] = []
        self.leads: list[list[str]] = []  # live-only frames just before each stored one
        self.tail: list[str] = []  # live-only frames after the last stored one
        self.terminal_seq: int | None = None
        self.followers = 0
        self._news: asyncio.Future[None] | None = None
        self._burst: tuple[tuple[int, int, int], str] = ((0, 0, 0), "")

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.frames) - 1 if self.frames else 0

    def put(self, events: list[EventRecord]) -> None:
        """The runtime's sink: called in the loop with each checkpoint's new events."""
        for record in events:
            if record.seq == LIVE_ONLY_SEQ:
                self.tail.append(live_only_frame(record))
                continue
            if self.frames and record.seq != self.last_seq + 1:
                self.frames.clear()  # not contiguous: start again from here
                self.leads.clear()
            if not self.frames:
                self.first_seq = record.seq
            self.frames.append(frame(record.seq, event_view(record)))
            self.leads.append(self.tail)
            self.tail = []
            if record.type in TERMINAL_EVENT_TYPES:
                self.terminal_seq = record.seq
        if len(self.frames) > 2 * self.limit:
            dropped = len(self.frames) - self.limit
            del self.frames[:dropped]
            del self.leads[:dropped]
            self.first_seq += dropped
        if self._news is not None:
            self._news.set_result(None)
            self._news = None

    def after(self, seq: int, sent: int = 0) -> str | None:
        """Frames after ``seq`` as one string ("" if none yet); None if the window lost some.

        ``sent``: how many live-only frames after ``seq`` the follower already has.
        """
        if not self.frames or seq >= self.last_seq:
            return ""
        if seq + 1 < self.first_seq:
            return None
        key = (seq, self.last_seq, sent)
        cached, text = self._burst
        if cached != key:
            # Followers usually stand at the same place: join their burst once for all.
            first = seq + 1 - self.first_seq
            parts = self.leads[first][sent:]
            parts.append(self.frames[first])
            for lead, stored in zip(self.leads[first + 1 :], self.frames[first + 1 :], strict=True):
                parts += lead
                parts.append(stored)
            text = "".join(parts)
            self._burst = (key, text)
        return text

    def live_tail(self, seq: int, sent: int) -> str:
        """Live-only frames after the last stored event not sent yet to a follower at ``seq``."""
        if seq != self.last_seq or len(self.tail) <= sent:
            return ""
        return "".join(self.tail[sent:])

    async def wait(self, timeout: float) -> bool:
        """Wait for new events; True if some arrived before ``timeout``."""
        if self._news is None:
            self._news = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._news)
        except TimeoutError:
            return False
        return True

    def catch_up_page(self) -> int:
        """How many events to read from the store at first: about CATCH_UP_BYTES, judging by
        the frames in the window (CATCH_UP_FIRST_PAGE when there are none to judge by)."""
        recent = self.frames[-CATCH_UP_FIRST_PAGE:]
        if not recent:
            return CATCH_UP_FIRST_PAGE
        return _next_page(len(recent), sum(len(text) for text in recent))

    def coalesce(self, base: float) -> float:
        return max(base, self.followers / FANOUT_WRITES_PER_SECOND) if base else 0.0


def _next_page(events: int, size: int) -> int:
    """The next catch-up page: as many events as make about CATCH_UP_BYTES, judging by
    the ``size`` in bytes of the last ``events``."""
    per_event = max(size / events, 1.0)
    return max(1, min(CATCH_UP_PAGE, int(CATCH_UP_BYTES / per_event)))


_channels: weakref.WeakKeyDictionary[Runtime, dict[str, _Channel]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _following(runtime: Runtime, execution_id: str, limit: int) -> Iterator[_Channel]:
    """Join the channel of ``execution_id`` (opened on first use, closed by the last to leave)."""
    channels = _channels.setdefault(runtime, {})
    channel = channels.get(execution_id)
    if channel is None:
        channel = channels[execution_id] = _Channel(limit)
        runtime.add_sink(execution_id, channel.put)
    channel.followers += 1
    try:
        yield channel
    finally:
        channel.followers -= 1
        if not channel.followers:
            runtime.remove_sink(execution_id, channel.put)
            del channels[execution_id]


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
    loop = asyncio.get_running_loop()
    with _following(runtime, execution_id, timing.max_buffered) as channel:
        page = channel.catch_up_page()
        while True:
            # Catch up from the store: at the start, after a gap, on the poll tick. Pages
            # are sized to about CATCH_UP_BYTES, and each goes out as one write: a client
            # that stops reading holds one page here, whatever its events weigh.
            while True:
                batch = await engine.events(execution_id, after=after, limit=page)
                full = len(batch) == page
                ended = next((n for n, event in enumerate(batch) if event.is_terminal), None)
                if ended is not None:
                    del batch[ended + 1 :]
                if batch:
                    text = "".join(frame(event.seq, event) for event in batch)
                    page = _next_page(len(batch), len(text))
                    after = batch[-1].seq
                    del batch
                    yield text
                    del text
                    if ended is not None:
                        return
                    if full:
                        continue
                break
            last_poll = last_sent = loop.time()
            if (await engine.state(execution_id)).state in TERMINAL_STATES:
                # Terminal with no terminal event after `after`: nothing more will come.
                if not await engine.events(execution_id, after=after, limit=1):
                    return
                continue
            tail_sent = 0
            while True:
                burst = channel.after(after, tail_sent)
                if burst is None:
                    break  # the window moved past us: read the gap from the store
                if burst:
                    yield burst
                    after = channel.last_seq
                    tail_sent = 0
                    last_sent = loop.time()
                    if channel.terminal_seq is not None and after >= channel.terminal_seq:
                        return
                if tail := channel.live_tail(after, tail_sent):
                    yield tail
                    tail_sent = len(channel.tail)
                    last_sent = loop.time()
                now = loop.time()
                if now - last_poll >= timing.store_poll:
                    if not runtime.owns(execution_id):
                        break  # run elsewhere: its events only reach us through the store
                    last_poll = now
                if now - last_sent >= timing.keepalive:
                    yield comment("keep-alive")
                    last_sent = loop.time()
                    continue
                woken = await channel.wait(
                    min(timing.keepalive - (now - last_sent), timing.store_poll - (now - last_poll))
                )
                if woken and not runtime.owns(execution_id) and not channel.after(after, tail_sent):
                    break  # written by another process (it notified us): read the store
                if woken and timing.coalesce:
                    # Let a burst of checkpoints gather: one write for many events.
                    await asyncio.sleep(channel.coalesce(timing.coalesce))


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
        events = [event for event in events if event.seq != LIVE_ONLY_SEQ]
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


_hubs: weakref.WeakKeyDictionary[Runtime, EventHub] = weakref.WeakKeyDictionary()


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
