"""Server-sent events: one execution's log, or every execution of an organization.

Frames are ``id: <id>``, ``event: <type>``, ``data: <EventView as JSON>``; a
comment line (``: keep-alive``) is sent when nothing else was for a while.

Streams never hold the engine up. The live events of an execution reach this
process's followers through one shared channel: the runtime hands it each
checkpoint's events once, they are rendered and encoded once, and the followers
(each just a cursor) send the same bytes in coalesced bursts, so a hundred
followers cost the engine about what a few do. The channel keeps what its slowest
follower still has to send, up to a byte bound; a follower that falls further
behind reads the gap from the store and carries on, and nothing is skipped.

Events another process writes (an HTTP worker's followers of an execution the
server runs, ``pausepoint server --workers``) reach the channel as a notice that
the store changed: the channel reads the new events once, for all its followers,
into the same window (and every ``store_poll`` seconds, should a notice be
missed). A follower reads the store itself only to catch up, at the start or
after falling behind the window, and followers reading the same page at once
share one read.

How an event is written is the stream's ``FrameStyle``: pausepoint's own frames,
or a dialect's (Shannon's names and fields). Followers of one execution share a
channel per style; a style may render an event as nothing (a filtered type), and
the stream still ends after the terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from pausepoint.engine.state import iso
from pausepoint.errors import StoreUnavailable
from pausepoint.models import LIVE_ONLY_SEQ, TERMINAL_EVENT_TYPES, EventView
from pausepoint.service.engine import Engine, event_view
from pausepoint.service.feed import EventFeed, EventRecord
from pausepoint.states import ExecutionState

log = logging.getLogger("pausepoint.api.sse")

KEEPALIVE_SECONDS = 15.0
STORE_POLL_SECONDS = 2.0
MAX_BUFFERED_EVENTS = 1000
# An execution's live window keeps the frames its slowest follower has not sent yet,
# up to this many bytes; one further behind catches up from the store.
WINDOW_BYTES = 8 * 1024 * 1024
# Reading from the store to catch up: pages of about this many bytes of frames (at
# most CATCH_UP_PAGE events), sized by the events seen last; the first page of a
# stream with nothing to judge by is small.
CATCH_UP_BYTES = 256 * 1024
CATCH_UP_FIRST_PAGE = 50
CATCH_UP_PAGE = 500


# Live events wait this long after a wake-up so that bursts go out in one write.
COALESCE_SECONDS = 0.02
# All followers of one execution together send at most about this many writes per
# second: the wait grows with their number (a hundred see events within half a
# second), so a crowd costs the engine about what a few do. Measured in
# bench/http_bench.py: at 500 a hundred followers of a flat-out execution took a
# third of its steps/s, at 200 about a tenth.
FANOUT_WRITES_PER_SECOND = 200.0


@dataclass(frozen=True)
class StreamTiming:
    """How often a stream sends keep-alives and looks in the store (tests shrink them)."""

    keepalive: float = KEEPALIVE_SECONDS
    store_poll: float = STORE_POLL_SECONDS
    max_buffered: int = MAX_BUFFERED_EVENTS
    window_bytes: int = WINDOW_BYTES
    coalesce: float = COALESCE_SECONDS


def frame(event_id: str | int, event: EventView) -> str:
    return f"id: {event_id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


def live_only_frame(record: EventRecord) -> str:
    """A frame without an id: it is not stored, so nobody can resume from it."""
    data = {"execution_id": record.execution_id, "type": record.type, "data": record.data}
    return f"event: {record.type}\ndata: {json.dumps(data)}\n\n"


def comment(text: str) -> str:
    return f": {text}\n\n"


KEEPALIVE = comment("keep-alive").encode()


class FrameStyle(Protocol):
    """How a stream writes events; hashable, so that followers with equal styles share."""

    def stored(self, event: EventView) -> str:
        """The frame of a stored event ("" leaves it out)."""
        ...

    def live_only(self, record: EventRecord) -> str:
        """The frame of an event nobody stores ("" leaves it out)."""
        ...


@dataclass(frozen=True)
class NativeFrames:
    """pausepoint's own frames: ``id: <seq>``, ``event: <type>``, ``data: <EventView>``."""

    def stored(self, event: EventView) -> str:
        return frame(event.seq, event)

    def live_only(self, record: EventRecord) -> str:
        return live_only_frame(record)


NATIVE_FRAMES = NativeFrames()

# What orjson must not write its own way (pydantic writes these differently): it refuses
# them, and the frame is rendered by pydantic instead.
_ORJSON_STRICT = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_last_at: tuple[float, str] = (math.nan, "")


def _iso(at: float) -> str:
    """``iso(at)``, remembering the last: a checkpoint's events share their time."""
    global _last_at
    if _last_at[0] != at:
        _last_at = (at, iso(at))
    return _last_at[1]


def _native(seq: int, event_type: str, at: str, data: Any, execution_id: str) -> bytes | None:
    """pausepoint's frame of a stored event, byte for byte what ``frame`` writes, by orjson
    (a third of pydantic's cost); None for data orjson would write otherwise."""
    try:
        body = orjson.dumps(
            {"execution_id": execution_id, "seq": seq, "type": event_type, "at": at, "data": data},
            option=_ORJSON_STRICT,
        )
    except TypeError:
        return None
    return b"id: %d\nevent: %b\ndata: %b\n\n" % (seq, event_type.encode(), body)


def _encoded_record(style: FrameStyle, record: EventRecord) -> bytes:
    """``record``'s frame in ``style``, encoded."""
    if isinstance(style, NativeFrames):
        at = _iso(record.at)
        fast = _native(record.seq, record.type, at, record.data, record.execution_id)
        if fast is not None:
            return fast
    return style.stored(event_view(record)).encode()


def _encoded_view(style: FrameStyle, event: EventView) -> bytes:
    """``event``'s frame in ``style``, encoded."""
    if isinstance(style, NativeFrames):
        fast = _native(event.seq, event.type, event.at, event.data, event.execution_id)
        if fast is not None:
            return fast
    return style.stored(event).encode()


class _Inbox:
    """A bounded buffer of live frames and the signal that something happened."""

    def __init__(self, limit: int) -> None:
        self.events: deque[bytes] = deque()
        self.limit = limit
        self.overflowed = False
        self.wake = asyncio.Event()

    def put(self, frames: Iterable[bytes]) -> None:
        if self.overflowed:
            return
        for event in frames:
            if len(self.events) >= self.limit:
                self.overflow()
                return
            self.events.append(event)
        self.wake.set()

    def __call__(self, events: list[EventRecord] | None) -> None:
        """As a feed's organization subscriber: a batch, or None when events were dropped."""
        if events is None:
            self.overflow()
        else:
            self.put(_organization_frames(events))

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


@dataclass(eq=False)
class _Follower:
    """One stream's place in a channel: the last stored event it sent, and how many
    live-only frames after that one."""

    after: int
    tail_sent: int = 0


@dataclass(frozen=True)
class _Page:
    """Events read from the store to catch up, rendered once for every follower that asked."""

    text: bytes
    count: int
    last_seq: int
    full: bool  # as many as asked for: there may be more
    ended: bool  # it holds the terminal event (and nothing after it)


class _Channel:
    """The recent live events of one execution, shared by everyone following it here.

    The runtime hands each checkpoint's events to the channel once, however many
    followers there are: they are rendered to frames and encoded once, into one
    block of bytes per batch, and one future wakes every waiting follower. A
    follower's burst is the blocks after its place, joined (the first sliced), and
    followers at the same place share it: a write costs a follower a join of a few
    large blocks, never work per event. Events written by another process arrive
    as an empty batch (the store changed): the channel reads them from the store
    once, for everyone (``refresh``). The window keeps the frames some follower
    has not sent yet (and the last ``limit``, for followers about to join), up to
    ``max_bytes``; a follower that falls behind that reads the gap from the store.
    Followers that read the same page of the store at the same time share one read.

    Live-only events (streamed tokens) have no sequence number: each is kept with
    the stored event that follows it (or in ``tail`` until one does), so followers
    get them in order, once, even when both arrive within one coalescing wait.
    """

    def __init__(
        self,
        limit: int,
        max_bytes: int,
        style: FrameStyle = NATIVE_FRAMES,
        *,
        engine: Engine | None = None,
        execution_id: str = "",
        refresh_pause: float = COALESCE_SECONDS,
    ) -> None:
        self.style = style
        self.limit = max(limit, 1)
        self.max_bytes = max_bytes
        # Per stored event of the window, from first_seq on: the live-only frames just
        # before it, its bytes with those, and where they start (block number, offset).
        self.first_seq = 0  # 0 while empty
        self.leads: list[list[bytes]] = []
        self.sizes: list[int] = []
        self.places: list[tuple[int, int]] = []
        self.size = 0
        # The frames themselves, a block per batch; blocks[0] is block number first_block.
        self.blocks: list[bytes] = []
        self.first_block = 0
        self._sealing: list[bytes] = []  # the block being put together
        self._sealing_size = 0
        self.tail: list[bytes] = []  # live-only frames after the last stored one
        self.terminal_seq: int | None = None
        self.members: set[_Follower] = set()
        self._trim_at = 2 * self.limit
        self._news: asyncio.Future[None] | None = None
        self._burst: tuple[tuple[int, int, int], bytes] = ((0, 0, 0), b"")
        self._reads: dict[tuple[int, int], asyncio.Future[_Page]] = {}
        # Reading what other processes wrote (``engine`` is scoped to the execution's
        # organization): one read at a time, and one more if news came meanwhile.
        self.engine = engine
        self.execution_id = execution_id
        self.refresh_pause = refresh_pause
        self.refreshed_at = -math.inf
        self._refreshing: asyncio.Task[None] | None = None
        self._again = False

    @property
    def followers(self) -> int:
        return len(self.members)

    @property
    def count(self) -> int:
        """How many stored events the window holds."""
        return len(self.sizes)

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.sizes) - 1 if self.sizes else 0

    def join(self, after: int) -> _Follower:
        follower = _Follower(after)
        self.members.add(follower)
        return follower

    def leave(self, follower: _Follower) -> None:
        self.members.discard(follower)

    def close(self) -> None:
        """The last follower left: stop reading the store for it."""
        if self._refreshing is not None:
            self._refreshing.cancel()
            self._refreshing = None

    def put(self, events: list[EventRecord]) -> None:
        """The runtime's sink: called in the loop with each checkpoint's new events, or
        with none when another process wrote events (they are read from the store)."""
        if not events:
            self.refresh()
            return
        for record in events:
            if record.seq == LIVE_ONLY_SEQ:
                self.tail.append(self.style.live_only(record).encode())
                continue
            self._append(record.seq, record.type, _encoded_record(self.style, record))
        self._settle()

    def _append(self, seq: int, event_type: str, data: bytes) -> None:
        if self.sizes and seq != self.last_seq + 1:
            self._drop(self.count, self.size)  # not contiguous: start again here
        if not self.sizes:
            self.first_seq = seq
        self.places.append((self.first_block + len(self.blocks), self._sealing_size))
        size = len(data)
        for lead in self.tail:
            self._sealing.append(lead)
            size += len(lead)
        self._sealing.append(data)
        self._sealing_size += size
        self.leads.append(self.tail)
        self.sizes.append(size)
        self.size += size
        self.tail = []
        if event_type in TERMINAL_EVENT_TYPES:
            self.terminal_seq = seq

    def _settle(self) -> None:
        """After new frames: seal them into a block, trim the window if due, and wake the
        followers."""
        if self._sealing:
            self.blocks.append(b"".join(self._sealing))
            self._sealing, self._sealing_size = [], 0
        if self.count >= self._trim_at or self.size > self.max_bytes:
            self._trim()
        if self._news is not None:
            self._news.set_result(None)
            self._news = None

    # -- events written by other processes ----------------------------------------------

    def refresh(self) -> None:
        """Read the events after the window's last one from the store, once for every
        follower (another process wrote some); news during a read means one more read."""
        if self.engine is None:
            self._settle()  # nothing to read with: the followers look themselves
            return
        if self._refreshing is not None and not self._refreshing.done():
            self._again = True
            return
        self._refreshing = asyncio.get_running_loop().create_task(
            self._refresh(self.engine), name=f"pausepoint-sse-refresh-{self.execution_id}"
        )

    def poll(self, interval: float) -> None:
        """``refresh`` unless the store was read within ``interval`` seconds (followers of an
        execution run elsewhere each call this now and then: one read serves them all)."""
        if asyncio.get_running_loop().time() - self.refreshed_at >= interval:
            self.refresh()

    async def _refresh(self, engine: Engine) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._again = False
            self.refreshed_at = loop.time()
            if self.sizes:
                start = self.last_seq
            else:  # the followers that are furthest ahead: the others catch up themselves
                start = max((member.after for member in self.members), default=0)
            if self.terminal_seq is not None and start >= self.terminal_seq:
                return  # nothing comes after the terminal event
            try:
                views = await engine.events(self.execution_id, after=start, limit=CATCH_UP_PAGE)
            except StoreUnavailable as error:  # an outage: no traceback, it says enough
                log.warning("reading the events of %s failed: %s", self.execution_id, error)
                self._settle()
                return
            except Exception:  # its followers catch up from the store themselves
                log.warning("reading the events of %s failed", self.execution_id, exc_info=True)
                self._settle()
                return
            for view in views:
                if self.sizes and view.seq <= self.last_seq:
                    continue  # the runtime here published it meanwhile
                self._append(view.seq, view.type, _encoded_view(self.style, view))
                if view.is_terminal:
                    break
            self._settle()
            if (
                len(views) == CATCH_UP_PAGE
                and self.terminal_seq is None
                and self.size < self.max_bytes // 2
            ):
                continue  # more to read (beyond half the window, followers read their gap)
            if not self._again:
                return
            # More news came while reading: let a burst of commits gather, read once.
            await asyncio.sleep(self.refresh_pause)

    def _trim(self) -> None:
        """Forget the frames every follower has sent, beyond the last ``limit``; and the
        oldest, needed or not, while the window holds more than ``max_bytes``."""
        slowest = min((member.after for member in self.members), default=self.last_seq)
        keep_from = min(slowest + 1, self.last_seq - self.limit + 1)
        count = max(0, keep_from - self.first_seq)
        dropped = sum(self.sizes[:count])
        if self.size - dropped > self.max_bytes:
            # Over the bound: make room for a while (to three quarters), not one frame a time.
            while self.size - dropped > self.max_bytes * 3 // 4 and count < self.count - 1:
                dropped += self.sizes[count]
                count += 1
        self._drop(count, dropped)
        # Look again when another `limit` frames came (trimming is a copy of the lists).
        self._trim_at = self.count + self.limit

    def _drop(self, count: int, size: int) -> None:
        """Forget the oldest ``count`` frames, ``size`` bytes with their leads (and the
        blocks that hold nothing else)."""
        if count <= 0:
            return
        self.size -= size
        del self.leads[:count], self.sizes[:count], self.places[:count]
        if self.sizes:
            self.first_seq += count
            unused = self.places[0][0] - self.first_block
        else:
            self.first_seq = 0
            unused = len(self.blocks)
            self._sealing, self._sealing_size = [], 0
        del self.blocks[:unused]
        self.first_block += unused
        if self.sizes and (cut := self.places[0][1]):
            # The first block held dropped frames too: keep only what the window holds.
            self.blocks[0] = self.blocks[0][cut:]
            for index, (number, offset) in enumerate(self.places):
                if number != self.first_block:
                    break
                self.places[index] = (number, offset - cut)

    def after(self, seq: int, sent: int = 0) -> bytes | None:
        """Frames after ``seq`` as one string (b"" if none yet); None if the window lost some.

        ``sent``: how many live-only frames after ``seq`` the follower already has.
        """
        if not self.sizes or seq >= self.last_seq:
            return b""
        if seq + 1 < self.first_seq:
            return None
        key = (seq, self.last_seq, sent)
        cached, text = self._burst
        if cached != key:
            # Followers usually stand at the same place: join their burst once for all.
            first = seq + 1 - self.first_seq
            number, offset = self.places[first]
            offset += sum(map(len, self.leads[first][:sent]))
            index = number - self.first_block
            head = self.blocks[index]
            if offset:
                head = head[offset:]
            rest = self.blocks[index + 1 :]
            text = b"".join((head, *rest)) if rest else head
            self._burst = (key, text)
        return text

    def live_tail(self, seq: int, sent: int) -> bytes:
        """Live-only frames after the last stored event not sent yet to a follower at ``seq``."""
        if seq != self.last_seq or len(self.tail) <= sent:
            return b""
        return b"".join(self.tail[sent:])

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

    async def read(self, engine: Engine, execution_id: str, after: int, limit: int) -> _Page:
        """Up to ``limit`` stored events after ``after``, up to the terminal one, as frames.

        Followers asking for the same page while it is being read share the read.
        """
        key = (after, limit)
        pending = self._reads.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                _read_page(engine, execution_id, after, limit, self.style)
            )
            self._reads[key] = pending
            pending.add_done_callback(lambda _: self._reads.pop(key, None))
        return await asyncio.shield(pending)

    def catch_up_page(self) -> int:
        """How many events to read from the store at first: about CATCH_UP_BYTES, judging by
        the frames in the window (CATCH_UP_FIRST_PAGE when there are none to judge by)."""
        recent = self.sizes[-CATCH_UP_FIRST_PAGE:]
        if not recent:
            return CATCH_UP_FIRST_PAGE
        return _next_page(len(recent), sum(recent))

    def coalesce(self, base: float) -> float:
        """How long a woken follower waits for more events before it writes.

        On average ``base``, or longer as followers grow in number; drawn at random
        around that, so that the followers of one execution, all woken by the same
        checkpoint, do not all write at once: a hundred writes in one go would hold
        the event loop, and the engine's next step, for milliseconds.
        """
        if not base:
            return 0.0
        return max(base, self.followers / FANOUT_WRITES_PER_SECOND) * random.uniform(0.5, 1.5)


async def _read_page(
    engine: Engine, execution_id: str, after: int, limit: int, style: FrameStyle
) -> _Page:
    batch = await engine.events(execution_id, after=after, limit=limit)
    full = len(batch) == limit
    ended = next((n for n, event in enumerate(batch) if event.is_terminal), None)
    if ended is not None:
        del batch[ended + 1 :]
    text = b"".join(_encoded_view(style, event) for event in batch)
    last_seq = batch[-1].seq if batch else after
    return _Page(text, len(batch), last_seq, full, ended is not None)


def _next_page(events: int, size: int) -> int:
    """The next catch-up page: as many events as make about CATCH_UP_BYTES, judging by
    the ``size`` in bytes of the last ``events``."""
    per_event = max(size / events, 1.0)
    return max(1, min(CATCH_UP_PAGE, int(CATCH_UP_BYTES / per_event)))


_ChannelKey = tuple[str, FrameStyle]
_channels: weakref.WeakKeyDictionary[EventFeed, dict[_ChannelKey, _Channel]] = (
    weakref.WeakKeyDictionary()
)


def channel_of(
    feed: EventFeed, execution_id: str, style: FrameStyle = NATIVE_FRAMES
) -> _Channel | None:
    """The channel open in this process for ``execution_id`` in ``style``, if any."""
    return _channels.get(feed, {}).get((execution_id, style))


@contextlib.contextmanager
def _following(
    engine: Engine, execution_id: str, after: int, timing: StreamTiming, style: FrameStyle
) -> Iterator[tuple[_Channel, _Follower]]:
    """Join the channel of ``execution_id`` in ``style`` (opened on first use, closed by the
    last to leave)."""
    feed = engine.feed
    channels = _channels.setdefault(feed, {})
    key = (execution_id, style)
    channel = channels.get(key)
    if channel is None:
        channel = channels[key] = _Channel(
            timing.max_buffered,
            timing.window_bytes,
            style,
            engine=engine,
            execution_id=execution_id,
            refresh_pause=timing.coalesce,
        )
        feed.subscribe(execution_id, channel.put)
    follower = channel.join(after)
    try:
        yield channel, follower
    finally:
        channel.leave(follower)
        if not channel.followers:
            feed.unsubscribe(execution_id, channel.put)
            channel.close()
            del channels[key]


def execution_events(
    engine: Engine,
    execution_id: str,
    *,
    after: int,
    timing: StreamTiming,
    style: FrameStyle = NATIVE_FRAMES,
) -> AsyncIterator[bytes]:
    """SSE frames of ``execution_id`` after sequence ``after``, live; ends after the terminal one.

    Chunks are UTF-8 bytes, shared by every follower of the execution in this process.
    ``engine`` must be scoped to the caller's organization, and the execution
    checked to be theirs before any response starts (``OpenStreamRequest``).
    """
    return _ended_by_outage(_execution_frames(engine, execution_id, after, timing, style))


async def _ended_by_outage(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``frames``, ended cleanly if the database goes away mid-stream: the reply began with
    a 200, so the client learns it by the end of the stream and resumes with
    ``Last-Event-ID`` (and a 503 until the database is back), rather than by a broken one."""
    try:
        async for chunk in frames:
            yield chunk
    except StoreUnavailable as error:
        log.warning("an event stream ended early: %s", error)


async def _execution_frames(
    engine: Engine, execution_id: str, after: int, timing: StreamTiming, style: FrameStyle
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    with _following(engine, execution_id, after, timing, style) as (channel, me):
        size = channel.catch_up_page()
        while True:
            # Catch up from the store: at the start and after falling behind the window.
            # Pages are sized to about CATCH_UP_BYTES, and each goes out as one write: a
            # client that stops reading holds one page here, whatever its events weigh.
            while True:
                page = await channel.read(engine, execution_id, me.after, size)
                if page.count:
                    size = _next_page(page.count, len(page.text))
                    yield page.text
                    me.after = page.last_seq
                ended, more = page.ended, page.full
                del page  # a stream holds no page while it waits
                if ended:
                    return
                if not more:
                    break
            last_poll = last_sent = loop.time()
            if ExecutionState((await engine.state(execution_id)).state).is_terminal:
                # Terminal with no terminal event after `after`: nothing more will come.
                if not await engine.events(execution_id, after=me.after, limit=1):
                    return
                continue
            me.tail_sent = 0
            while True:
                burst = channel.after(me.after, me.tail_sent)
                if burst is None:
                    break  # the window moved past us: read the gap from the store
                if channel.count and me.after < channel.last_seq:
                    upto = channel.last_seq  # more may come while the burst is being sent
                    if burst:  # "" when the style left every new event out
                        yield burst
                        last_sent = loop.time()
                    me.after, me.tail_sent = upto, 0
                    if channel.terminal_seq is not None and upto >= channel.terminal_seq:
                        return
                if tail := channel.live_tail(me.after, me.tail_sent):
                    count = len(channel.tail)
                    yield tail
                    me.tail_sent = count
                    last_sent = loop.time()
                now = loop.time()
                if now - last_poll >= timing.store_poll:
                    last_poll = now
                    if not engine.runs_here(execution_id):
                        # Run elsewhere, whose notices reach the channel: should one be
                        # missed, the store is read anyway (once for all followers).
                        channel.poll(timing.store_poll)
                if now - last_sent >= timing.keepalive:
                    yield KEEPALIVE
                    last_sent = loop.time()
                    continue
                woken = await channel.wait(
                    min(timing.keepalive - (now - last_sent), timing.store_poll - (now - last_poll))
                )
                if woken and timing.coalesce:
                    # Let a burst of checkpoints gather: one write for many events.
                    await asyncio.sleep(channel.coalesce(timing.coalesce))


# -- every execution of an organization ---------------------------------------------------


# The last batch the feed handed its organization subscribers, rendered: the feed hands
# every subscriber the same list, so the first renders it and the others reuse it.
_organization_batch: tuple[list[EventRecord] | None, list[bytes]] = (None, [])


def _organization_frames(events: list[EventRecord]) -> list[bytes]:
    global _organization_batch
    batch, frames = _organization_batch
    if batch is not events:
        frames = [
            frame(f"{record.execution_id}:{record.seq}", event_view(record)).encode()
            for record in events
        ]
        _organization_batch = (events, frames)
    return frames


async def organization_events(engine: Engine, *, timing: StreamTiming) -> AsyncIterator[bytes]:
    """SSE frames of every execution of ``engine.org_id``, live (ids ``<execution_id>:<seq>``)."""
    inbox = _Inbox(timing.max_buffered)
    subscription = engine.feed.subscribe_organization(engine.org_id, inbox)
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    try:
        yield comment("connected").encode()
        while True:
            while inbox.events:
                yield inbox.events.popleft()
                last_sent = loop.time()
            if inbox.overflowed:
                yield comment("too far behind: reconnect").encode()
                return
            idle = loop.time() - last_sent
            if idle >= timing.keepalive:
                yield KEEPALIVE
                last_sent = loop.time()
                continue
            await inbox.wait(timing.keepalive - idle)
    finally:
        engine.feed.unsubscribe_organization(subscription)
