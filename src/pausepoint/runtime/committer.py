"""Group commit: checkpoints of many executions share one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from pausepoint.store.records import Checkpoint
from pausepoint.store.sql import SqlStore


class GroupCommitter:
    """Collects checkpoints while a transaction is in progress and writes them together.

    A single execution pays one transaction per checkpoint; a thousand
    concurrent executions share transactions instead of queueing behind each
    other. A store whose calls in one turn of the loop share a transaction
    already (SQLite) is called directly: collecting here would only add a turn.
    """

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._queue: list[tuple[Checkpoint, asyncio.Future[bool]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._observers: list[Callable[[float], None]] = []

    def observe(self, observer: Callable[[float], None]) -> None:
        """Call ``observer`` with the duration (seconds) of every checkpoint transaction
        (on a store that batches calls itself: from the call to its commit)."""
        if observer not in self._observers:
            self._observers.append(observer)

    def _observed(self, seconds: float) -> None:
        for observer in self._observers:
            observer(seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pausepoint-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue.clear()

    async def commit(self, checkpoint: Checkpoint) -> bool:
        """Durably write ``checkpoint``; False when the execution's lease was lost."""
        if self._store.batches_calls:
            started = time.perf_counter()
            (written,) = await self._store.checkpoint((checkpoint,))
            self._observed(time.perf_counter() - started)
            return written
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((checkpoint, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            started = time.perf_counter()
            try:
                written = await self._store.checkpoint([item for item, _ in batch])
            except Exception as error:  # the database itself failed: every waiter learns why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._observed(time.perf_counter() - started)
            for (_, future), ok in zip(batch, written, strict=True):
                if not future.done():
                    future.set_result(ok)
