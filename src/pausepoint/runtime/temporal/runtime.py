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

Temporal itself may go away for a while (its frontend restarted, say). A
start or a command is recorded first, so a request never needs Temporal to
be accepted: a send that fails, or takes longer than
``temporal_send_timeout``, leaves the command to the sweep, and once one has
failed, requests stop trying until a sweep gets through again. So while
Temporal is down the API answers at once from the store, and afterwards the
sweep delivers what was accepted meanwhile, each command once.

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
# What a frontend that is down, restarting or cut off answers (the client's own
# retries exhausted); any other error is Temporal's answer to this send.
UNREACHABLE = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)


class TemporalUnavailable(PausepointError):
    code = "temporal_unavailable"
    http_status = 503


class _Unreachable(Exception):
    """Temporal did not answer a send: the sweep ends its round and tries again later."""


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
        # Set when a send found Temporal unreachable, cleared when one gets through: while
        # set, requests leave their sends to the sweep instead of each waiting out a timeout.
        self._unreachable_since: float | None = None
        self._last_try = 0.0  # when a request last tried all the same (see _send_now)
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
        await self._send_now(record.id)
        return True

    async def deliver(
        self, command: CommandRecord, commands_version: int, *, wait: float
    ) -> CommandRecord:
        self.relay.follow(command.execution_id)
        await self._send_now(command.execution_id, command)
        if wait <= 0 or not self.temporal_reachable:
            # Temporal is away: nothing applies the command before it is back, so the
            # reply is the accepted command, now, not after waiting ``wait`` for nothing.
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

    @property
    def temporal_reachable(self) -> bool:
        """False from a send that found Temporal unreachable until one gets through."""
        return self._unreachable_since is None

    async def _send_now(self, execution_id: str, command: CommandRecord | None = None) -> bool:
        """Send on a request's behalf, unless Temporal is known to be unreachable.

        False when not sent: the command is recorded, and the sweep (an API
        server's) delivers it. A process without a sweep (a worker starting a
        subflow) still tries once per sweep interval, so it notices Temporal's return.
        """
        if self._unreachable_since is not None:
            now = self.clock()
            if self.serve or now - self._last_try < self.settings.temporal_sweep_interval:
                return False
            self._last_try = now
        try:
            return await self._send(execution_id, command)
        except _Unreachable:
            return False

    async def _send(self, execution_id: str, command: CommandRecord | None = None) -> bool:
        """Start the execution's workflow unless it runs, and signal ``command`` to it.

        Raises :class:`_Unreachable` when Temporal did not answer within
        ``temporal_send_timeout``: the sweep sends it again. False when Temporal
        refused the send. A workflow that already finished needs nothing: its
        last checkpoint refused every command still pending.
        """
        options = WorkflowOptions(
            heartbeat_timeout=self.settings.temporal_heartbeat_timeout,
            continue_as_new_after=self.settings.temporal_continue_as_new_after,
        )
        # The client retries an unreachable frontend for many seconds on its own; the
        # timeout bounds that. A send cut short here may still arrive later: harmless,
        # since the workflow applies each command once however often it is sent.
        sending = self.client.start_workflow(
            WORKFLOW_NAME,
            ExecutionInput(execution_id, options),
            id=workflow_id(execution_id),
            task_queue=self.settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=COMMAND_SIGNAL if command is not None else None,
            start_signal_args=[command_message(command)] if command is not None else [],
        )
        try:
            await asyncio.wait_for(sending, self.settings.temporal_send_timeout)
        except WorkflowAlreadyStartedError:
            pass
        except (TimeoutError, RPCError) as error:
            if isinstance(error, RPCError) and error.status not in UNREACHABLE:
                log.warning("execution %s: Temporal refused a send (%s)", execution_id, error)
                return False
            self._lost_temporal(error)
            raise _Unreachable() from None
        self._found_temporal()
        return True

    def _lost_temporal(self, error: Exception) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = self.clock()
            log.warning(
                "Temporal at %s is unreachable (%s); commands are recorded and the sweep "
                "delivers them once it is back",
                self.settings.temporal_address,
                str(error) or "no answer within temporal_send_timeout",
            )

    def _found_temporal(self) -> None:
        if self._unreachable_since is not None:
            log.warning(
                "Temporal at %s is back after %.1fs; delivering what was accepted meanwhile",
                self.settings.temporal_address,
                self.clock() - self._unreachable_since,
            )
            self._unreachable_since = None

    # -- the sweep --------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except _Unreachable:
                pass  # logged once per outage; the next round tries again
            except Exception:
                log.exception("sweep failed; retrying")
            await asyncio.sleep(self.settings.temporal_sweep_interval)

    async def sweep_once(self) -> None:
        """Send again every command still pending, start workflows never started, and end
        those that leave a terminate unapplied too long.

        Raises :class:`_Unreachable`, ending the round, at the first send Temporal
        does not answer: the others would only wait out the same timeout.
        """
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
            await asyncio.wait_for(
                handle.terminate(reason=terminate.reason), self.settings.temporal_send_timeout
            )
        except (TimeoutError, RPCError) as error:
            if isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND:
                pass  # it ended, or never began
            elif isinstance(error, RPCError) and error.status not in UNREACHABLE:
                raise
            else:
                # Not recorded as terminated while its workflow may still run a step.
                self._lost_temporal(error)
                raise _Unreachable() from None
        self._found_temporal()
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
