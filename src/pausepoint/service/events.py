"""Events of an execution: read, follow live, wait for an end."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

from pausepoint.engine.model import ExecutionStatus
from pausepoint.models import LIVE_ONLY_SEQ, TERMINAL_EVENT_TYPES, EventView, ExecutionView
from pausepoint.service.executions import ExecutionsLayer
from pausepoint.service.views import event_view
from pausepoint.store.records import (
    EventRecord,
)

# A follower this many live events behind reads the store instead of holding them.
FOLLOW_BUFFER = 1000


class EventsLayer(ExecutionsLayer):
    async def events(
        self, execution_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[EventView]:
        await self._record(execution_id)
        return [
            event_view(e)
            for e in await self.store.read_events(execution_id, after=after, limit=limit)
        ]

    async def follow(self, execution_id: str, *, after: int = 0) -> AsyncIterator[EventView]:
        """Every event after ``after``, live, in order; ends after the terminal event.

        Events checkpointed in this process come straight from the feed; the store
        is read to catch up (at the start, after falling behind, and for events
        written by other processes)."""
        await self._record(execution_id)
        live: deque[EventRecord] = deque()
        news = asyncio.Event()
        behind = False

        def sink(events: list[EventRecord]) -> None:
            nonlocal behind
            if not events:  # written elsewhere: only the store has them
                behind = True
            elif not behind:
                live.extend(event for event in events if event.seq != LIVE_ONLY_SEQ)
                if len(live) > FOLLOW_BUFFER:  # a slow reader: read the store instead
                    live.clear()
                    behind = True
            news.set()

        self.feed.subscribe(execution_id, sink)
        behind = True  # the start: catch up from the store
        try:
            while True:
                while live and live[0].seq <= after:
                    live.popleft()
                if live and live[0].seq == after + 1 and not behind:
                    batch = list(live)
                    live.clear()
                else:
                    live.clear()
                    behind = False
                    batch = await self.store.read_events(execution_id, after=after)
                for event in batch:
                    after = event.seq
                    view = event_view(event)
                    yield view
                    if view.is_terminal:
                        return
                if batch:
                    continue
                record = await self._record(execution_id)
                if ExecutionStatus(record.status).is_terminal and record.event_seq <= after:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), self.settings.poll_interval)
                news.clear()
        finally:
            self.feed.unsubscribe(execution_id, sink)

    async def wait(
        self,
        execution_id: str,
        *,
        until: Callable[[ExecutionView], bool] | None = None,
        timeout: float | None = None,
    ) -> ExecutionView:
        """Wait until the execution is terminal (or ``until`` holds); returns its view.

        Raises ``TimeoutError`` after ``timeout`` seconds. Waiting costs next to
        nothing while the execution runs: only the events that can settle the wait
        wake the waiter (its end; with ``until``, any state change), never task
        events, so the store is read a handful of times per execution."""
        news = asyncio.Event()
        wakes = TERMINAL_EVENT_TYPES if until is None else None

        def sink(events: list[EventRecord]) -> None:
            # An empty batch: another process wrote events, only the store knows which.
            if not events:
                news.set()
            elif wakes is None:
                if any(event.type.startswith("workflow.") for event in events):
                    news.set()
            elif any(event.type in wakes for event in events):
                news.set()

        self.feed.subscribe(execution_id, sink)
        try:
            async with asyncio.timeout(timeout):
                looked_at = -1
                while True:
                    news.clear()
                    record = await self._record(execution_id)
                    if record.event_seq != looked_at:
                        looked_at = record.event_seq
                        if until is None:
                            if ExecutionStatus(record.status).is_terminal:
                                return await self._execution_of(record)
                        else:
                            view = await self._execution_of(record)
                            if until(view) or view.is_terminal:
                                return view
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(news.wait(), self.settings.poll_interval)
        finally:
            self.feed.unsubscribe(execution_id, sink)
