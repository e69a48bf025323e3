"""One loaded execution: feeds events to the host loop, checkpoints, then acts.

The order inside one step is the durability contract: the engine's new state,
its log events and the results of the commands it applied are committed in one
transaction *before* any action (start a task, arm a timer) is carried out. A
crash therefore loses at most work in flight, which recovery re-runs. The step
itself is :mod:`pausepoint.engine.host`'s, as on Temporal; the actor does its I/O.

Pure tasks (``return``, ``outputs``, ``log``: nothing outside the execution sees
them run) are run inside the step that starts them, and the engine advances
with their results before the step commits: a chain of them costs one
transaction, not one each, with every task run and event still recorded. A
crash before the commit re-runs them, which changes nothing. The chain is
bounded, so commands and other executions never wait long.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any

from pausepoint.engine.host import CORE_EXCLUDED, StepInProgress, core_state
from pausepoint.engine.interpreter import EngineEnv
from pausepoint.engine.model import (
    CancelTask,
    ClearTimer,
    Command,
    CommandKind,
    CommandResult,
    Event,
    ExecutionStatus,
    RunTask,
    SetTimer,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
)
from pausepoint.errors import StoreUnavailable, TaskError
from pausepoint.models import LIVE_ONLY_SEQ
from pausepoint.runtime.backoff import StoreBackoff
from pausepoint.runtime.base import checkpoint_of
from pausepoint.store.records import Checkpoint, CommandRecord, EventRecord
from pausepoint.tasks import PURE_TYPES, LeafContext, run_leaf
from pausepoint.tasks.shell import remove_work_dirs, work_dirs_of

if TYPE_CHECKING:
    from pausepoint.runtime.embedded import EmbeddedRuntime

log = logging.getLogger("pausepoint.runtime")

# Pure tasks run inside one step before it commits, at most this many.
INLINE_CHAIN = 64

__all__ = ["CORE_EXCLUDED", "INLINE_CHAIN", "ExecutionActor", "command_event", "core_state"]


def command_event(record: CommandRecord) -> Command:
    return Command(
        id=record.id,
        kind=CommandKind(record.kind),
        at=record.created_at,
        by=record.actor,
        reason=record.reason,
        payload=record.payload,
        traceparent=record.traceparent,
    )


class ExecutionActor:
    """Runs one execution in this process while it holds the lease."""

    def __init__(
        self,
        runtime: EmbeddedRuntime,
        state: dict[str, Any],
        env: EngineEnv,
        *,
        event_seq: int,
        commands_version: int,
        claiming: bool = False,
    ) -> None:
        self.runtime = runtime
        self.state = state
        self.env = env
        self.execution_id: str = state["execution_id"]
        self.event_seq = event_seq
        self.commands_version = commands_version
        # Not holding the lease yet: the first checkpoint takes it (see
        # ``EmbeddedRuntime._resume_parked``).
        self.claiming = claiming
        self.inbox: asyncio.Queue[Event] = asyncio.Queue()
        self.seen_commands: set[str] = set()
        self.leaves: dict[str, asyncio.Task[None]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.closed = False
        self.ended = False  # it reached a terminal state (and let go of it)
        self.task: asyncio.Task[None] | None = None

    # -- inputs ----------------------------------------------------------------

    def deliver_command(self, record: CommandRecord) -> None:
        if record.id in self.seen_commands or record.status != "pending":
            return
        self.seen_commands.add(record.id)
        self.inbox.put_nowait(command_event(record))

    def take(self, event: Event) -> None:
        """Queue ``event`` for the next step; a command only the first time it comes."""
        if isinstance(event, Command):
            if event.id in self.seen_commands:
                return
            self.seen_commands.add(event.id)
        self.inbox.put_nowait(event)

    def note_commands_version(self, version: int) -> None:
        self.commands_version = max(self.commands_version, version)

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self.closed:
                events = [await self.inbox.get()]
                while not self.inbox.empty():
                    events.append(self.inbox.get_nowait())
                await self.step(events)
        except asyncio.CancelledError:
            self.abandon()
            raise
        except Exception:
            log.exception("execution %s: runtime error; releasing it", self.execution_id)
            self.abandon()
        finally:
            self.runtime.forget(self)

    async def step(self, events: list[Event]) -> None:
        taking = StepInProgress(
            self.state,
            self.env,
            events,
            inline_types=PURE_TYPES,
            inline_limit=0 if self.runtime.draining else INLINE_CHAIN,
        )
        while (task := taking.next_inline_task()) is not None:
            taking.add(await self.execute(task))
        now = self.runtime.clock()
        step = taking.finish(
            event_seq=self.event_seq,
            release_when_paused=True,
            more_events=not self.inbox.empty(),
            now=now,
        )
        checkpoint = checkpoint_of(
            self.execution_id,
            step,
            owner=self.runtime.owner,
            updated_at=now,
            commands_version_seen=self.commands_version,
            claim_until=now + self.runtime.settings.lease_ttl if self.claiming else None,
        )
        if not await self.commit(checkpoint):
            self.abandon()
            if self.claiming:  # written meanwhile, or held elsewhere: take it on the usual way
                self.runtime.readopt(self.execution_id)
            else:
                log.warning(
                    "execution %s: lease lost; another process runs it now", self.execution_id
                )
            return
        self.claiming = False
        # The store may have added events (commands refused as the execution finished).
        records = checkpoint.events
        self.event_seq = checkpoint.event_seq
        release = step.release
        if release:
            self.closed = True
            self.ended = step.status.is_terminal
            if self.ended and (scratch := work_dirs_of(self.runtime.settings, self.execution_id)):
                # Scratch space (WorkingDirectory, inputFiles) is the execution's: it is gone
                # by the time anyone sees the execution ended.
                await asyncio.to_thread(remove_work_dirs, scratch)
            if not self.ended:
                self.runtime.park(self, step.status.value)
        for action in step.actions:
            self.perform(action)
        results = [
            CommandResult(cid, applied, message, ExecutionStatus(state_after))
            for cid, applied, message, state_after in checkpoint.command_results
        ]
        self.runtime.published(self.execution_id, records, results)
        if release:
            self.abandon()

    async def commit(self, checkpoint: Checkpoint) -> bool:
        """Write ``checkpoint``, waiting out a database that cannot be reached; False when
        the lease was lost.

        The execution stays here meanwhile, with its results in hand: the step is
        already decided, so the same checkpoint is written once the store is back. A
        failure can be ambiguous (the connection broke after COMMIT was sent): before
        writing again, the store is asked whether the checkpoint landed, since writing
        its events twice would clash with themselves.
        """
        try:
            return await self.runtime.committer.commit(checkpoint)
        except StoreUnavailable as error:
            return await self._commit_when_back(checkpoint, error)

    async def _commit_when_back(self, checkpoint: Checkpoint, error: StoreUnavailable) -> bool:
        """The outage path of :meth:`commit` (kept off the path every step takes)."""
        backoff = StoreBackoff(f"execution {self.execution_id}: writing its checkpoint")
        while True:
            await backoff.wait(error)
            try:
                written = await self._landed(checkpoint) or await self.runtime.committer.commit(
                    checkpoint
                )
            except StoreUnavailable as again:
                error = again
                continue
            backoff.recovered()
            return written

    async def _landed(self, checkpoint: Checkpoint) -> bool:
        """Whether the store holds ``checkpoint`` already (a commit whose answer was lost).

        Under the lease nobody else writes the execution, and every checkpoint stamps
        its ``updated_at`` and ``event_seq`` on the row: both matching means it is this
        one. If another process took the execution over meanwhile, they differ and the
        rewrite is refused by the lease check as usual."""
        record = await self.runtime.store.get_execution(self.execution_id)
        return (
            record is not None
            and record.event_seq == checkpoint.event_seq
            and record.updated_at == checkpoint.updated_at
        )

    # -- actions ---------------------------------------------------------------

    def perform(self, action: Any) -> None:
        if isinstance(action, RunTask):
            # While draining, new work stays recorded as in flight; the next owner runs it.
            if not self.closed and not self.runtime.draining:
                started = asyncio.create_task(
                    self.run_task(action), name=f"{self.execution_id}/{action.task_run_id}"
                )
                started.add_done_callback(functools.partial(self.leaf_done, action))
                self.leaves[action.task_run_id] = started
        elif isinstance(action, CancelTask):
            leaf = self.leaves.get(action.task_run_id)
            if leaf is not None:
                if action.kill:
                    self.leaves.pop(action.task_run_id, None)
                leaf.cancel()
        elif isinstance(action, SetTimer):
            self.arm(action.timer_id, action.deadline)
        elif isinstance(action, ClearTimer):
            handle = self.timers.pop(action.timer_id, None)
            if handle is not None:
                handle.cancel()

    def arm(self, timer_id: str, deadline: float) -> None:
        if self.closed:
            return
        old = self.timers.pop(timer_id, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, deadline - self.runtime.clock())
        loop = asyncio.get_running_loop()
        self.timers[timer_id] = loop.call_later(delay, self.fire, timer_id)

    def fire(self, timer_id: str) -> None:
        self.timers.pop(timer_id, None)
        self.inbox.put_nowait(TimerFired(timer_id, self.runtime.clock()))

    async def run_task(self, action: RunTask) -> None:
        try:
            result = await self.execute(action)
        except asyncio.CancelledError:
            if self.closed or action.task_run_id not in self.leaves:
                return  # terminated, shutting down or lease lost: nobody waits for an answer
            result = TaskCancelled(action.task_run_id, action.attempt, self.runtime.clock())
        finally:
            if self.leaves.get(action.task_run_id) is asyncio.current_task():
                del self.leaves[action.task_run_id]
        self.inbox.put_nowait(result)

    async def execute(self, action: RunTask) -> Event:
        """Run one leaf task; its outcome as the event the engine takes next."""
        logs: list[dict[str, Any]] = []
        clock = self.runtime.clock

        def record_log(level: str, message: str) -> None:
            logs.append({"level": level, "message": message, "at": clock()})

        def emit_live(type_: str, data: dict[str, Any]) -> None:
            record = EventRecord(
                self.execution_id,
                LIVE_ONLY_SEQ,
                type_,
                clock(),
                {"task_run_id": action.task_run_id, "task_id": action.task_id, **data},
            )
            self.runtime.published(self.execution_id, [record], ())

        context = LeafContext(
            execution_id=self.execution_id,
            task_run_id=f"{self.execution_id}/{action.task_run_id}",
            attempt=action.attempt,
            settings=self.runtime.settings,
            log=record_log,
            emit=emit_live,
            traceparent=self.state.get("traceparent"),
            control=self.runtime.task_control,
        )
        backoff = StoreBackoff(f"execution {self.execution_id}: task {action.task_id}")
        while True:
            try:
                outputs = await run_leaf(action.task_type, action.spec, context)
                break
            except StoreUnavailable as error:
                # The task's own store call (a subflow, the key-value store) failed: not the
                # task's fault, so it runs again once the store is back (at-least-once).
                await backoff.wait(error)
            except TaskError as error:
                return TaskFailed(action.task_run_id, action.attempt, clock(), error.message, logs)
            except Exception as error:  # a bug in an executor still fails only this task
                message = f"{type(error).__name__}: {error}"
                return TaskFailed(action.task_run_id, action.attempt, clock(), message, logs)
        backoff.recovered()
        return TaskSucceeded(action.task_run_id, action.attempt, clock(), outputs, logs)

    def leaf_done(self, action: RunTask, leaf: asyncio.Task[None]) -> None:
        """Report a leaf cancelled before its body ever ran (cancel in the step that started it).

        Its coroutine never got to catch the cancellation, so nobody else will.
        """
        if not leaf.cancelled():
            return
        if self.leaves.get(action.task_run_id) is leaf:
            del self.leaves[action.task_run_id]
            if not self.closed:
                self.inbox.put_nowait(
                    TaskCancelled(action.task_run_id, action.attempt, self.runtime.clock())
                )

    def abandon(self) -> None:
        """Stop everything this process does for the execution (without recording anything)."""
        self.closed = True
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        for leaf in self.leaves.values():
            leaf.cancel()
        self.leaves.clear()

    async def cancel(self) -> None:
        """Stop the loop (process shutdown); in-flight tasks are re-run by whoever takes over."""
        self.abandon()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
