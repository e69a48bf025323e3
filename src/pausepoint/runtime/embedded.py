"""The embedded runtime: executions run as asyncio tasks in this process.

Several processes may share one database. Each execution is run by one process
at a time under a lease; a process renews all its leases with one statement,
and another process takes an execution over once its lease expires. Commands
written by another process, and timers of executions nobody holds, are found
by a poll every ``poll_interval`` seconds; on a database that notifies
(PostgreSQL, and a SQLite file), a command accepted or work left by any process
starts a poll at once instead.

A paused execution holds no coroutine and no thread: its actor checkpoints,
releases the lease and exits; its earliest timer deadline is stored as
``wake_at`` so that whoever polls brings it back in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pausepoint.config import Settings
from pausepoint.engine.host import opening_events, rebuild_state
from pausepoint.engine.interpreter import EngineEnv
from pausepoint.engine.model import Command, CommandResult
from pausepoint.errors import StoreUnavailable
from pausepoint.runtime.actor import ExecutionActor, command_event
from pausepoint.runtime.backoff import StoreBackoff
from pausepoint.runtime.base import NewExecution, RuntimeListener, settle
from pausepoint.runtime.committer import GroupCommitter
from pausepoint.store.records import CommandRecord, EventRecord, ExecutionRecord
from pausepoint.store.sql import SqlStore
from pausepoint.tasks import shutdown_executors
from pausepoint.tasks.context import TaskControl

log = logging.getLogger("pausepoint.runtime")


class EmbeddedRuntime:
    """Runs executions in-process.

    With ``serve=True`` it takes on any work it finds in the database (a
    server); otherwise only the executions it is asked to run or to watch (a
    CLI process).
    """

    def __init__(
        self,
        store: SqlStore,
        settings: Settings,
        *,
        env_for: Callable[[ExecutionRecord], Awaitable[EngineEnv]],
        listener: RuntimeListener,
        clock: Callable[[], float],
        serve: bool = False,
        run_executions: bool = True,
        task_control: TaskControl | None = None,
    ) -> None:
        self.store = store
        self.task_control = task_control
        self.settings = settings
        self.clock = clock
        self.serve = serve and run_executions
        self.run_executions = run_executions
        self._env_for = env_for
        self.listener = listener
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.committer = GroupCommitter(store)
        self.actors: dict[str, ExecutionActor] = {}
        self.watched: set[str] = set()
        self._command_waiters: dict[str, asyncio.Future[CommandResult]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._adopting: dict[str, asyncio.Future[bool]] = {}
        self._stopped = False
        self.draining = False
        self._background: set[asyncio.Task[bool]] = set()
        self._parked: OrderedDict[str, _Parked] = OrderedDict()
        self._work_noticed = asyncio.Event()
        # Per execution run elsewhere: callers here waiting for a command's outcome.
        self._outcome_waiters: dict[str, set[asyncio.Event]] = {}

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self.committer.start()
        # Work left by any process wakes the poll at once, and events written by other
        # processes wake this process's followers of those executions (on a database
        # that notifies: PostgreSQL, a SQLite file).
        await self.store.listen(self._work_noticed_elsewhere, on_events=self._events_elsewhere)
        if not self.run_executions:
            return
        self._loops = [
            asyncio.create_task(self._poll_loop(), name="pausepoint-poll"),
            asyncio.create_task(self._lease_loop(), name="pausepoint-leases"),
        ]

    async def drain(self, grace: float) -> None:
        """Start nothing new; give in-flight tasks ``grace`` seconds to finish and checkpoint.

        Work that does not finish in time is re-run by whoever runs the
        execution next (at-least-once), exactly as after a crash.
        """
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(  # noqa: ASYNC110 - a bounded drain
            actor.leaves or not actor.inbox.empty() for actor in self.actors.values()
        ):
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop running executions here and release their leases so others can continue."""
        self._stopped = True
        for task in [*self._loops, *self._background]:
            task.cancel()
        for task in [*self._loops, *self._background]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for actor in list(self.actors.values()):
            await actor.cancel()
        await self.committer.stop()
        with contextlib.suppress(Exception):
            await self.store.release_leases(self.owner, self.clock())
        await shutdown_executors()

    # -- running executions ------------------------------------------------------

    def watch(self, execution_id: str) -> None:
        """Bring ``execution_id`` back here when its timers fall due (non-serving processes;
        a serving one takes up every execution anyway). Forgotten once it ends here."""
        if not self.serve:
            self.watched.add(execution_id)

    async def submit(self, new: NewExecution) -> bool:
        record = new.record
        here = self.run_executions and not self._stopped
        if here:
            # Stored under our lease: running it needs nothing claimed or read back.
            record = dataclasses.replace(
                record,
                lease_owner=self.owner,
                lease_expires_at=record.created_at + self.settings.lease_ttl,
            )
        if not await self.store.create_execution(record, new.queued(record)):
            return False
        self.watch(record.id)
        if here:
            self._launch(new.state, new.env, record, record.commands_version, [])
        return True

    async def deliver(
        self, command: CommandRecord, commands_version: int, *, wait: float
    ) -> CommandRecord:
        outcome = self._command_waiters.setdefault(
            command.id, asyncio.get_running_loop().create_future()
        )
        try:
            actor = self.actors.get(command.execution_id)
            if actor is not None and not actor.closed:
                # It already knows this command: no poll needs to wake it for it.
                actor.note_commands_version(commands_version)
                actor.deliver_command(command)
            elif not self._resume_parked(command, commands_version):
                await self.adopt(command.execution_id)
            if wait <= 0:
                return command
            return await settle(
                self.store,
                command,
                wait,
                clock=self.clock,
                interval=self.settings.poll_interval,
                outcome_within=functools.partial(self._outcome_within, command, outcome),
            )
        finally:
            self._command_waiters.pop(command.id, None)

    async def _outcome_within(
        self, command: CommandRecord, outcome: asyncio.Future[CommandResult], seconds: float
    ) -> CommandResult | None:
        """The command's result if this process applies it within ``seconds``."""
        if not outcome.done():
            if self.runs_here(command.execution_id):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(outcome), seconds)
            elif not await self._news_elsewhere(command.execution_id, seconds):
                # Whoever ran it may have let go meanwhile (paused, or exiting): then it
                # continues here rather than waiting for a process that is not coming.
                await self.adopt(command.execution_id)
        return outcome.result() if outcome.done() else None

    async def _news_elsewhere(self, execution_id: str, seconds: float) -> bool:
        """Wait up to ``seconds`` for another process to write events of ``execution_id``
        (as the database notifies them); whether it did."""
        news = asyncio.Event()
        waiters = self._outcome_waiters.setdefault(execution_id, set())
        waiters.add(news)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), seconds)
        finally:
            waiters.discard(news)
            if not waiters:
                del self._outcome_waiters[execution_id]
        return news.is_set()

    def _work_noticed_elsewhere(self, _execution_id: str) -> None:
        if self.run_executions:
            self._work_noticed.set()

    def _events_elsewhere(self, execution_id: str) -> None:
        """Another process wrote events of ``execution_id``: its followers here read them.

        An empty id is a catch-up (the database's notifications were lost for a while,
        say across a restart): every follower and waiter here reads the store."""
        if not execution_id:
            for waiters in self._outcome_waiters.values():
                for news in waiters:
                    news.set()
            for followed in list(self.listener.followed()):
                if not self.runs_here(followed):
                    self.listener.published(followed, [])
            return
        for news in self._outcome_waiters.get(execution_id, ()):
            news.set()
        if not self.runs_here(execution_id) and self.listener.following(execution_id):
            self.listener.published(execution_id, [])  # the events are in the store

    def runs_here(self, execution_id: str) -> bool:
        actor = self.actors.get(execution_id)
        return actor is not None and not actor.closed

    async def adopt(self, execution_id: str) -> bool:
        """Claim the lease, load the last checkpoint and continue from it."""
        if self._stopped or not self.run_executions:
            return False
        if self.runs_here(execution_id):
            return True
        pending = self._adopting.get(execution_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._adopting[execution_id] = future
        try:
            result = await self._adopt(execution_id)
            future.set_result(result)
            return result
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved
            raise
        finally:
            del self._adopting[execution_id]

    async def _adopt(self, execution_id: str) -> bool:
        parked = self._parked.pop(execution_id, None)
        loaded = await self.store.claim_and_load(
            execution_id,
            self.owner,
            self.settings.lease_ttl,
            self.clock(),
            parked.event_seq if parked else None,
        )
        if loaded is None:
            return False
        record = loaded.record
        if loaded.task_runs is None and parked is not None:
            state = parked.state  # nothing happened since we let go: skip reloading task runs
        else:
            state = rebuild_state(record.state, loaded.task_runs or ())
        env = await self._env_for(record)
        self._launch(state, env, record, loaded.commands_version, loaded.pending)
        return True

    def _launch(
        self,
        state: dict[str, Any],
        env: EngineEnv,
        record: ExecutionRecord,
        commands_version: int,
        pending: list[CommandRecord],
    ) -> None:
        """Run the execution here from ``state``, with the commands still to apply."""
        self._run_actor(
            state,
            env,
            record.id,
            record.status,
            record.event_seq,
            commands_version,
            [command_event(c) for c in pending if c.status == "pending"],
        )

    def _run_actor(
        self,
        state: dict[str, Any],
        env: EngineEnv,
        execution_id: str,
        status: str,
        event_seq: int,
        commands_version: int,
        commands: list[Command],
        *,
        claiming: bool = False,
    ) -> None:
        actor = ExecutionActor(
            self,
            state,
            env,
            event_seq=event_seq,
            commands_version=commands_version,
            claiming=claiming,
        )
        self.actors[execution_id] = actor
        for event in opening_events(status, event_seq, self.clock(), commands):
            actor.take(event)
        actor.task = asyncio.create_task(actor.run(), name=f"execution-{execution_id}")

    def _resume_parked(self, command: CommandRecord, commands_version: int) -> bool:
        """Run a parked execution again from the copy kept here, for ``command``, without
        reading it back: its first checkpoint takes the lease, if nobody wrote the
        execution since. Only when ``command`` is the one command accepted since it was
        parked (a later one waits for the poll that finds it; an earlier one must not be
        skipped). False when that does not hold: then adopt it the usual way."""
        execution_id = command.execution_id
        parked = self._parked.get(execution_id)
        if (
            parked is None
            or parked.commands_version + 1 != commands_version
            or self._stopped
            or self.draining
            or not self.run_executions
            or execution_id in self._adopting
        ):
            return False
        del self._parked[execution_id]
        self._run_actor(
            parked.state,
            parked.env,
            execution_id,
            parked.status,
            parked.event_seq,
            commands_version,
            [command_event(command)],
            claiming=True,
        )
        return True

    def readopt(self, execution_id: str) -> None:
        """Adopt ``execution_id`` the usual way, in the background (a claim that lost)."""
        if self._stopped:
            return
        task = asyncio.get_running_loop().create_task(self._readopt(execution_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _readopt(self, execution_id: str) -> bool:
        """Adopt, waiting out a database that cannot be reached (the poll would find the
        execution too, but only once its wake-up falls due)."""
        backoff = StoreBackoff(f"adopting execution {execution_id}")
        while not self._stopped:
            try:
                result = await self.adopt(execution_id)
            except StoreUnavailable as error:
                await backoff.wait(error)
                continue
            backoff.recovered()
            return result
        return False

    def park(self, actor: ExecutionActor, status: str) -> None:
        """Keep a released (paused) execution's state, bounded, to skip reloading it on resume."""
        self._parked[actor.execution_id] = _Parked(
            actor.event_seq, actor.state, actor.env, status, actor.commands_version
        )
        self._parked.move_to_end(actor.execution_id)
        while len(self._parked) > self.settings.parked_cache_size:
            self._parked.popitem(last=False)

    def forget(self, actor: ExecutionActor) -> None:
        if self.actors.get(actor.execution_id) is actor:
            del self.actors[actor.execution_id]
        if actor.ended:
            self.watched.discard(actor.execution_id)
        if not actor.inbox.empty():
            # Something arrived while the actor was letting go: pick it up again.
            self.readopt(actor.execution_id)

    # -- notifications -----------------------------------------------------------

    def published(
        self, execution_id: str, events: list[EventRecord], results: Iterable[CommandResult]
    ) -> None:
        """An actor checkpointed (or a task emitted live events): tell the listener, and
        the callers waiting here for the outcome of a command it applied."""
        for result in results:
            waiter = self._command_waiters.pop(result.command_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(result)
        self.listener.published(execution_id, events)

    # -- background loops ----------------------------------------------------------

    async def _poll_loop(self) -> None:
        # Not `while True`: Python 3.11's wait_for can swallow a cancel that lands as work
        # is noticed; stop() sets _stopped first, so the loop ends all the same.
        backoff = StoreBackoff("polling for work")
        while not self._stopped:
            self._work_noticed.clear()
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as error:
                await backoff.wait(error)  # until the database is back: then poll at once
                continue
            except Exception:
                log.exception("poll failed; retrying")
            backoff.recovered()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work_noticed.wait(), self.settings.poll_interval)

    async def poll_once(self) -> None:
        work = await self.store.find_work(self.owner, self.clock())
        for execution_id, ours in work:
            if ours and self.runs_here(execution_id):
                pending, version = await self.store.pending_commands(execution_id)
                actor = self.actors.get(execution_id)
                if actor is not None:
                    actor.note_commands_version(version)
                    for command in pending:
                        actor.deliver_command(command)
                if not pending:
                    await self.store.settle_wake(execution_id, self.owner, version)
                continue
            if self.serve or execution_id in self.watched:
                await self.adopt(execution_id)

    async def _lease_loop(self) -> None:
        backoff = StoreBackoff("renewing leases")
        while True:
            await asyncio.sleep(self.settings.lease_renew_interval)
            try:
                await self.store.renew_leases(self.owner, self.settings.lease_ttl, self.clock())
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as error:
                # Leases lapse meanwhile; a checkpoint still writes while nobody else took
                # the execution (it checks the owner), and is refused cleanly if someone did.
                backoff.note(error)
                continue
            except Exception:
                log.exception("lease renewal failed; retrying")
            backoff.recovered()


@dataclasses.dataclass(frozen=True, slots=True)
class _Parked:
    """A paused execution's last checkpoint as this process wrote it, and what ran it."""

    event_seq: int
    state: dict[str, Any]
    env: EngineEnv
    status: str
    commands_version: int  # as of that checkpoint
