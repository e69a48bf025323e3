"""Events written by workers, relayed from the store to this process's followers.

With the embedded runtime, the process that runs an execution hands each
checkpoint's events to its followers. On Temporal, workers write them to the
store, so the control plane reads them back: for every execution someone
follows here (the listener says which), and for those this process started or
controlled (which is what the organization-wide feed shows), until they finish
or go quiet. The loop runs while the runtime does, and sleeps through ticks
with nothing to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pausepoint.models import TERMINAL_EVENT_TYPES
from pausepoint.runtime.base import RuntimeListener
from pausepoint.store.sql import SqlStore

log = logging.getLogger("pausepoint.runtime.temporal")

# An execution nobody follows is dropped after this long without news (a paused one, say).
IDLE_SECONDS = 60.0


@dataclass
class _Followed:
    after: int
    quiet_since: float


class EventRelay:
    """Reads new events of the executions it follows from the store: every ``interval``
    seconds, and at once when the database says some were written (:meth:`notice`)."""

    def __init__(
        self,
        store: SqlStore,
        listener: RuntimeListener,
        *,
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._listener = listener
        self._interval = interval
        self._clock = clock
        self._followed: dict[str, _Followed] = {}
        self._task: asyncio.Task[None] | None = None
        self._news = asyncio.Event()
        # Set by stop(): Python 3.11's wait_for can swallow a cancel that lands as the
        # event it waits for is set, and the loop must end all the same.
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="pausepoint-event-relay"
        )

    def notice(self, execution_id: str) -> None:
        """Another process wrote events of ``execution_id`` (PostgreSQL NOTIFY)."""
        if execution_id in self._followed or self._listener.following(execution_id):
            self._news.set()

    def follow(self, execution_id: str, *, after: int | None = None) -> None:
        """Relay the events of ``execution_id`` after ``after`` (default: from now on)."""
        if execution_id not in self._followed:
            # -1: start from the execution's current last event, read on the next tick.
            self._followed[execution_id] = _Followed(-1 if after is None else after, self._clock())
            self._news.set()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._news.clear()
            try:
                await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relaying events failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), self._interval)

    async def relay_once(self) -> None:
        now = self._clock()
        for execution_id in self._listener.followed():
            if execution_id not in self._followed:
                self._followed[execution_id] = _Followed(-1, now)
        for execution_id, followed in list(self._followed.items()):
            if followed.after < 0:
                record = await self._store.get_execution(execution_id)
                followed.after = record.event_seq if record is not None else 0
                continue
            events = await self._store.read_events(execution_id, after=followed.after)
            if events:
                followed.after = events[-1].seq
                followed.quiet_since = now
                self._listener.published(execution_id, events)
            finished = any(event.type in TERMINAL_EVENT_TYPES for event in events)
            quiet = now - followed.quiet_since > IDLE_SECONDS
            if (finished or quiet) and not self._listener.following(execution_id):
                del self._followed[execution_id]
