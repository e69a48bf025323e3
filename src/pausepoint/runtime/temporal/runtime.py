"""The Temporal runtime as the control plane sees it: start workflows, forward commands.

Executions run in Temporal workers (:class:`ExecutionWorker`), never in this
process. The store stays the source of truth: a command is recorded there
before anything else, then sent to the execution's workflow as a signal. A
process may die between the two, so ``serve=True`` (an API server) also sweeps
the store for commands and executions that never reached Temporal and sends
them again; the workflow applies each command once, in acceptance order,
however often it is sent. A terminate its workflow leaves unapplied for
``temporal_terminate_after`` seconds (no worker running, say) is carried out
by the sweep itself: Temporal terminates the workflow and the engine applies
the terminate to the last checkpoint.

Events reach this process's followers from the store, through an
:class:`EventRelay`; ``owns`` is always False, as for an execution another
embedded process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from pausepoint.config import Settings
from pausepoint.engine.host import rebuild_state, take_step
from pausepoint.engine.interpreter import EngineEnv
from pausepoint.engine.model import CommandResult
from pausepoint.errors import PausepointError
from pausepoint.runtime.actor import command_event
from pausepoint.runtime.base import NewExecution, RuntimeListener, checkpoint_of, settle
from pausepoint.runtime.temporal.activities import LEASE_SECONDS, command_message
from pausepoint.runtime.temporal.messages import (
    COMMAND_SIGNAL,
    TEMPORAL_OWNER,
    WORKFLOW_NAME,
    ExecutionInput,
    WorkflowOptions,
    workflow_id,
)
from pausepoint.runtime.temporal.relay import EventRelay
from pausepoint.runtime.temporal.worker import ExecutionWorker
from pausepoint.store.records import CommandRecord, ExecutionRecord
from pausepoint.store.sql import SqlStore
from pausepoint.tasks.context import TaskControl

log = logging.getLogger("pausepoint.runtime.temporal")
SWEEP_MEMORY = 10_000


class TemporalUnavailable(PausepointError):
    code = "temporal_unavailable"
    http_status = 503


class TemporalRuntime:
    """Runs executions on Temporal; this process records and forwards."""

    def __init__(
        self,
        store: SqlStore,
        settings: Settings,
        *,
        env_for: Callable[[ExecutionRecord], Awaitable[EngineEnv]],
        listener: RuntimeListener,
        clock: Callable[[], float],
        serve: bool = False,
        task_control: TaskControl | None = None,
    ) -> None:
        self.store = store
        self.task_control = task_control
        self.settings = settings
        self.clock = clock
        self.serve = serve
        self._env_for = env_for
        self._client: Client | None = None
        self._sweeper: asyncio.Task[None] | None = None
        # Per execution, the commands version the sweep last sent everything for:
        # the sweep repairs a lost signal once, it does not repeat itself.
        self._swept: dict[str, int] = {}
        self._terminate_after = settings.temporal_terminate_after
        self.relay = EventRelay(store, listener, interval=settings.poll_interval, clock=clock)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        address = self.settings.temporal_address
        try:
            self._client = await Client.connect(address, namespace=self.settings.temporal_namespace)
        except RuntimeError as error:
            raise TemporalUnavailable(
                f"cannot reach Temporal at {address}: {error}; start one with "
                f"`pausepoint dev temporal` or set --temporal-address"
            ) from None
        self.relay.start()
        if self.serve:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="pausepoint-sweep")
            # On PostgreSQL, events the workers write reach followers here at once.
            await self.store.listen(_ignore, on_events=self.relay.notice)

    async def drain(self, grace: float) -> None:
        """Nothing runs here, so there is nothing to let finish."""

    async def stop(self) -> None:
        await self.relay.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the Temporal runtime is not started")
        return self._client

    def worker(self) -> ExecutionWorker:
        """A worker sharing this runtime's client and store; run it with ``async with``."""
        return ExecutionWorker(
            self.client,
            self.store,
            self.settings,
            env_for=self._env_for,
            clock=self.clock,
            task_control=self.task_control,
        )

    # -- the Runtime seam ---------------------------------------------------------

    async def submit(self, new: NewExecution) -> bool:
        # Stored without a lease: the workflow takes it when it first runs, and until
        # then the sweep sees the execution and can start its workflow.
        record = new.record
        if not await self.store.create_execution(record, new.queued(record)):
            return False
        self.relay.follow(record.id, after=0)
        await self._send(record.id)
        return True

    async def deliver(
        self, command: CommandRecord, commands_version: int, *, wait: float
    ) -> CommandRecord:
        self.relay.follow(command.execution_id)
        await self._send(command.execution_id, command)
        if wait <= 0:
            return command
        return await settle(
            self.store,
            command,
            wait,
            clock=self.clock,
            interval=self.settings.poll_interval,
            outcome_within=_applied_elsewhere,
        )

    def runs_here(self, execution_id: str) -> bool:
        """Workers run executions: never this process."""
        return False

    # -- sending --------------------------------------------------------------------

    async def _send(self, execution_id: str, command: CommandRecord | None = None) -> bool:
        """Start the execution's workflow unless it runs, and signal ``command`` to it.

        False when Temporal could not be reached: the sweep sends it again. A
        workflow that already finished needs nothing: its last checkpoint
        refused every command still pending.
        """
        options = WorkflowOptions(
            heartbeat_timeout=self.settings.temporal_heartbeat_timeout,
            continue_as_new_after=self.settings.temporal_continue_as_new_after,
        )
        try:
            await self.client.start_workflow(
                WORKFLOW_NAME,
                ExecutionInput(execution_id, options),
                id=workflow_id(execution_id),
                task_queue=self.settings.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal=COMMAND_SIGNAL if command is not None else None,
                start_signal_args=[command_message(command)] if command is not None else [],
            )
        except WorkflowAlreadyStartedError:
            return True
        except RPCError as error:
            log.warning(
                "execution %s: cannot reach Temporal (%s); the sweep will retry",
                execution_id,
                error,
            )
            return False
        return True

    # -- the sweep --------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; retrying")
            await asyncio.sleep(self.settings.temporal_sweep_interval)

    async def sweep_once(self) -> None:
        """Send again every command still pending, start workflows never started, and end
        those that leave a terminate unapplied too long."""
        now = self.clock()
        for execution_id, _ in await self.store.find_work(TEMPORAL_OWNER, now):
            pending, version = await self.store.pending_commands(execution_id)
            terminate = next((c for c in pending if c.kind == "terminate"), None)
            if terminate is not None and now - terminate.created_at >= self._terminate_after:
                await self.terminate_stuck(execution_id, terminate)
                continue
            if self._swept.get(execution_id) == version:
                continue  # sent already; the workflow takes the lease when a worker runs it
            if pending:
                sent = [await self._send(execution_id, command) for command in pending]
            else:
                sent = [await self._send(execution_id)]
            if all(sent):
                if len(self._swept) >= SWEEP_MEMORY:
                    self._swept.clear()
                self._swept[execution_id] = version
                if terminate is None:  # a terminate stays in view until it applies
                    await self.store.settle_wake(execution_id, TEMPORAL_OWNER, version)

    async def terminate_stuck(self, execution_id: str, terminate: CommandRecord) -> None:
        """End the workflow through Temporal, then apply the terminate to the last checkpoint.

        For a workflow no worker runs (or one stuck): terminate's contract is
        "at once". The engine applies the commands pending up to the terminate,
        here, exactly as the workflow would have: the store shows TERMINATED with
        the reason, the events and the command results of any terminate.
        """
        handle = self.client.get_workflow_handle(workflow_id(execution_id))
        try:
            await handle.terminate(reason=terminate.reason)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:  # not found: it ended, or never began
                raise
        loaded = await self.store.claim_and_load(
            execution_id, TEMPORAL_OWNER, LEASE_SECONDS, self.clock(), None
        )
        if loaded is None:
            return  # it finished meanwhile
        record = loaded.record
        state = rebuild_state(record.state, loaded.task_runs or ())
        commands = [command_event(c) for c in loaded.pending if c.seq <= terminate.seq]
        step = take_step(state, await self._env_for(record), commands, event_seq=record.event_seq)
        checkpoint = checkpoint_of(
            execution_id, step, owner=TEMPORAL_OWNER, updated_at=self.clock()
        )
        checkpoint.release = True  # its workflow is gone: nothing runs the execution any more
        await self.store.checkpoint([checkpoint])
        log.warning(
            "execution %s: its workflow left a terminate unapplied for %ss; terminated it "
            "through Temporal",
            execution_id,
            self._terminate_after,
        )


def _ignore(_execution_id: str) -> None:
    """Work notifications are for embedded runtimes; Temporal hands out the work here."""


async def _applied_elsewhere(seconds: float) -> CommandResult | None:
    """Workers apply commands and record their results: the caller reads the store."""
    await asyncio.sleep(seconds)
    return None
