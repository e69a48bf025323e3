"""The live channel behind an execution's SSE streams, driven directly on a real engine.

What HTTP tests cannot pin down exactly: which events came from memory and which
from the store, and what happens to a stream that is slow to send while more events
arrive. Every test reads the real SQLite store through a counter of its reads.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pausepoint.api import sse
from pausepoint.api.sse import StreamTiming
from pausepoint.service.engine import Engine
from pausepoint.store.records import EventRecord
from pausepoint.testing import fast_settings

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
FRAME_ID = re.compile(r"^id: (\d+)$", re.M)


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


def ids(text: str) -> list[int]:
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
    assert 10 <= len(kept_up.frames) <= 20
    # One that sent nothing: everything is kept for it, within the byte bound.
    held = fed(sse._Channel(limit=10, max_bytes=2**20), keep_up=False)
    assert len(held.frames) == len(events)
    assert ids(held.after(0) or "") == [event.seq for event in events]
    assert held.size == sum(map(len, held.frames))
    # Past the bound, the oldest go: that follower is sent to the store for the gap.
    bound = held.size // 4
    tight = fed(sse._Channel(limit=10, max_bytes=bound), keep_up=False)
    assert 0 < tight.size <= bound
    assert tight.after(0) is None
    assert ids(tight.after(tight.first_seq - 1) or "") == [
        event.seq for event in events if event.seq >= tight.first_seq
    ]
