"""The live channel behind an execution's SSE streams, driven directly on a real engine.

What HTTP tests cannot pin down exactly: which events came from memory and which
from the store, and what happens to a stream that is slow to send while more events
arrive. Every test reads the real SQLite store through a counter of its reads.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pausepoint.api import sse
from pausepoint.api.sse import StreamTiming
from pausepoint.models import LIVE_ONLY_SEQ
from pausepoint.service.engine import Engine, event_view
from pausepoint.store.records import EventRecord, ExecutionRecord
from pausepoint.testing import assert_eventually, fast_settings

STEPS = 150
CHATTY = f"""
id: chatty
namespace: sse.channel
tasks:
  - id: gate
    type: pause
  - id: many
    type: foreach
    values: {list(range(STEPS))}
    tasks:
      - id: echo
        type: return
        format: "{{{{ taskrun.value }}}}"
"""
FRAME_ID = re.compile(rb"^id: (\d+)$", re.M)


class ReadCounter:
    """Counts the event reads that reach the store (the store itself does the reading)."""

    def __init__(self, engine: Engine) -> None:
        self.calls = 0
        store = engine.store
        read = store.read_events

        async def counted(
            execution_id: str, *, after: int = 0, limit: int = 1000
        ) -> list[EventRecord]:
            self.calls += 1
            return await read(execution_id, after=after, limit=limit)

        store.read_events = counted  # type: ignore[method-assign]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(fast_settings(tmp_path / "sse.db")) as running:
        scoped = running.as_org("acme")
        await scoped.put_flow(CHATTY)
        yield scoped


async def paused(engine: Engine) -> str:
    execution = await engine.start_execution("sse.channel", "chatty")
    await engine.wait(execution.id, until=lambda view: view.state == "PAUSED", timeout=10)
    return execution.id


def ids(text: bytes) -> list[int]:
    return [int(found) for found in FRAME_ID.findall(text)]


async def stored_seqs(engine: Engine, execution_id: str) -> list[int]:
    return [event.seq for event in await engine.events(execution_id, limit=10_000)]


@pytest.mark.parametrize(
    ("window_bytes", "from_memory"),
    [(8 * 2**20, True), (2_000, False)],
    ids=["window-holds-it", "window-too-small"],
)
async def test_a_stream_that_stops_sending_mid_run_gets_every_event_once(
    engine: Engine, window_bytes: int, from_memory: bool
) -> None:
    """A follower takes one burst, then sends nothing while the run finishes.

    The channel keeps what it has not sent (far more than ``max_buffered`` events)
    while that fits in ``window_bytes``, so the rest comes from memory; when it does
    not fit, the gap is read from the store. Either way: every event, in order, once,
    including those that arrived while the first burst was being sent.
    """
    execution_id = await paused(engine)
    timing = StreamTiming(max_buffered=10, window_bytes=window_bytes, coalesce=0.0)
    stream = sse.execution_events(engine, execution_id, after=0, timing=timing)
    received = ids(await anext(stream))  # the catch-up: up to the pause
    reads = ReadCounter(engine)

    burst = asyncio.ensure_future(anext(stream))
    await engine.resume(execution_id)
    received += ids(await burst)
    # The stream is now suspended in the middle of sending that burst; the run goes on.
    await engine.wait(execution_id, timeout=30)
    reads_before_rest = reads.calls
    received += [seq async for text in stream for seq in ids(text)]
    reads_for_rest = reads.calls - reads_before_rest

    assert received == await stored_seqs(engine, execution_id)
    assert len(received) > 2 * STEPS
    if from_memory:
        assert reads_for_rest == 0, "the rest came from the window, not the store"
    else:
        assert reads_for_rest > 0, "the gap was read from the store"


async def test_followers_joining_together_share_one_store_read(engine: Engine) -> None:
    execution_id = await paused(engine)
    timing = StreamTiming(coalesce=0.0)
    streams = [
        sse.execution_events(engine, execution_id, after=0, timing=timing) for _ in range(20)
    ]
    reads = ReadCounter(engine)
    firsts = await asyncio.gather(*(anext(stream) for stream in streams))
    assert reads.calls == 1
    assert len(set(firsts)) == 1 and ids(firsts[0]) == await stored_seqs(engine, execution_id)

    await engine.resume(execution_id)
    for stream in streams:
        rest = [seq async for text in stream for seq in ids(text)]
        assert ids(firsts[0]) + rest == await stored_seqs(engine, execution_id)
    assert not sse._channels[engine.feed], "the last follower to leave closes the channel"


async def test_the_window_keeps_what_a_follower_has_not_sent_up_to_its_byte_bound(
    engine: Engine,
) -> None:
    execution_id = await paused(engine)
    await engine.resume(execution_id)
    await engine.wait(execution_id, timeout=30)
    events = await engine.store.read_events(execution_id, after=0, limit=10_000)

    def fed(channel: sse._Channel, *, keep_up: bool) -> sse._Channel:
        follower = channel.join(after=0)
        for event in events:
            channel.put([event])
            if keep_up:
                follower.after = channel.last_seq
        return channel

    # Followers that keep up: no more than `limit` kept (twice that between trims).
    kept_up = fed(sse._Channel(limit=10, max_bytes=2**20), keep_up=True)
    assert 10 <= kept_up.count <= 20
    # One that sent nothing: everything is kept for it, within the byte bound.
    held = fed(sse._Channel(limit=10, max_bytes=2**20), keep_up=False)
    assert held.count == len(events)
    assert ids(held.after(0) or b"") == [event.seq for event in events]
    assert held.size == sum(map(len, held.blocks))
    # Past the bound, the oldest go: that follower is sent to the store for the gap.
    bound = held.size // 4
    tight = fed(sse._Channel(limit=10, max_bytes=bound), keep_up=False)
    assert 0 < tight.size <= bound
    assert tight.size == sum(map(len, tight.blocks))
    assert tight.after(0) is None
    assert ids(tight.after(tight.first_seq - 1) or b"") == [
        event.seq for event in events if event.seq >= tight.first_seq
    ]


class StoreReads:
    """Counts every read of an execution's row or events that reaches the store."""

    def __init__(self, engine: Engine) -> None:
        self.calls = 0
        store = engine.store
        get_execution, read_events = store.get_execution, store.read_events

        async def counted_get(execution_id: str) -> ExecutionRecord | None:
            self.calls += 1
            return await get_execution(execution_id)

        async def counted_read(
            execution_id: str, *, after: int = 0, limit: int = 1000
        ) -> list[EventRecord]:
            self.calls += 1
            return await read_events(execution_id, after=after, limit=limit)

        store.get_execution = counted_get  # type: ignore[method-assign]
        store.read_events = counted_read  # type: ignore[method-assign]


GATES = 5
GATED = "id: gated\nnamespace: sse.channel\ntasks:\n" + "".join(
    f"  - id: gate{i}\n    type: pause\n  - id: step{i}\n    type: return\n    format: x\n"
    for i in range(GATES)
)


async def test_followers_of_an_execution_run_elsewhere_share_each_read_of_its_news(
    tmp_path: Path,
) -> None:
    """Another engine on the same file runs the execution (as the server's process does
    for its HTTP workers); this one only serves its twenty followers. However many
    notices of new events arrive, each costs one read for all of them, not one each."""
    settings = fast_settings(tmp_path / "sse.db")
    async with Engine(settings) as runner, Engine(settings, run_executions=False) as server:
        running = runner.as_org("acme")
        await running.put_flow(GATED)
        execution = await running.start_execution("sse.channel", "gated")
        execution_id = execution.id

        async def paused_at(gate: int) -> None:
            await running.wait(
                execution_id,
                until=lambda view: any(p.task_id == f"gate{gate}" for p in view.pause_points),
                timeout=10,
            )

        await paused_at(0)
        notices = 0
        publish = server.feed.published

        def counting(execution_id: str, events: list[EventRecord]) -> None:
            nonlocal notices
            notices += not events
            publish(execution_id, events)

        server.feed.published = counting  # type: ignore[method-assign]
        serving = server.as_org("acme")
        timing = StreamTiming(coalesce=0.0, store_poll=3600.0)
        received: list[list[int]] = [[] for _ in range(20)]

        async def follow(into: list[int]) -> None:
            stream = sse.execution_events(serving, execution_id, after=0, timing=timing)
            async for text in stream:
                into += ids(text)

        followers = [asyncio.ensure_future(follow(into)) for into in received]

        async def all_caught_up() -> None:
            stored = await stored_seqs(running, execution_id)
            await assert_eventually(lambda: all(seqs == stored for seqs in received))

        await all_caught_up()
        reads = StoreReads(server)
        for gate in range(GATES):
            await running.resume(execution_id)
            if gate + 1 < GATES:
                await paused_at(gate + 1)
            else:
                await running.wait(execution_id, timeout=10)
            # Whether or not the database notified this engine, a notice now says it.
            server.feed.published(execution_id, [])
            await all_caught_up()
        await asyncio.wait_for(asyncio.gather(*followers), 10)

        # Each follower looks up the execution's state once as it goes live; then each
        # notice costs at most the execution's row and its new events, once for all.
        assert notices >= GATES
        assert reads.calls <= len(received) + 2 * notices, (reads.calls, notices)


def _record(seq: int, kind: str) -> EventRecord:
    return EventRecord("ex1", seq, kind, 1_700_000_000.0, {"n": seq})


@pytest.mark.parametrize("seed", range(20))
def test_a_follower_taking_bursts_at_any_moment_gets_every_frame_once_in_order(
    seed: int,
) -> None:
    """Stored and live-only events (streamed tokens) arrive in batches of any size; a
    follower takes what is new at random moments, between batches, as a stream does."""
    draw = random.Random(seed)
    records: list[EventRecord] = []
    seq = 0
    for _ in range(60):
        if draw.random() < 0.4:
            records.append(_record(LIVE_ONLY_SEQ, "agent.token"))
        else:
            seq += 1
            records.append(_record(seq, "task.started"))
    channel = sse._Channel(limit=draw.choice([1, 5, 1000]), max_bytes=2**20)
    me = channel.join(after=0)
    expected = b"".join(
        (
            sse.live_only_frame(r) if r.seq == LIVE_ONLY_SEQ else sse.frame(r.seq, event_view(r))
        ).encode()
        for r in records
    )

    def take() -> bytes:
        sent = b""
        burst = channel.after(me.after, me.tail_sent)
        assert burst is not None, "the window kept what this follower had not sent"
        if channel.count and me.after < channel.last_seq:
            sent += burst
            me.after, me.tail_sent = channel.last_seq, 0
        if tail := channel.live_tail(me.after, me.tail_sent):
            sent += tail
            me.tail_sent = len(channel.tail)
        return sent

    received = b""
    at = 0
    while at < len(records):
        size = draw.randint(1, 6)
        channel.put(records[at : at + size])
        at += size
        if draw.random() < 0.6:
            received += take()
    received += take()
    assert received == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes(timezones=st.just(UTC)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text() | st.integers(), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(st.text(), json_values, max_size=4),
    kind=st.text(min_size=1).filter(lambda text: "\n" not in text and "\r" not in text),
    at=st.floats(min_value=0, max_value=4e9),
)
def test_a_channel_writes_each_event_exactly_as_the_frame_of_its_public_view(
    data: dict[str, Any], kind: str, at: float
) -> None:
    """Frames are rendered by a faster writer than pydantic's when it can: byte for byte the
    same, whatever the event's data (big integers, non-string keys, dates, NaN...)."""
    record = EventRecord("ex1", 7, kind, at, data)
    channel = sse._Channel(limit=10, max_bytes=2**20)
    channel.put([record])
    assert channel.after(6) == sse.frame(7, event_view(record)).encode()
