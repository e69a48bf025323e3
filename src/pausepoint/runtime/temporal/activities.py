"""The activities of the execution workflow: everything that touches the store or runs a task.

Loading and checkpointing are local activities and may run more than once (a
worker lost mid-step replays it), so both are idempotent: loading only reads
and takes the lease, and a checkpoint whose events are already stored is not
written again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from pausepoint.config import Settings
from pausepoint.engine.interpreter import EngineEnv
from pausepoint.engine.model import ExecutionStatus
from pausepoint.errors import TaskError
from pausepoint.runtime.committer import GroupCommitter
from pausepoint.runtime.temporal.messages import (
    CHECKPOINT_ACTIVITY,
    DIVERGED,
    LOAD_ACTIVITY,
    RUN_TASK_ACTIVITY,
    TEMPORAL_OWNER,
    CommandMessage,
    LoadedExecution,
    Projection,
    TaskInput,
    TaskOutcome,
)
from pausepoint.store.records import Checkpoint, CommandRecord, EventRecord, ExecutionRecord
from pausepoint.store.sql import SqlStore
from pausepoint.tasks import LeafContext, run_leaf
from pausepoint.tasks.context import TaskControl

log = logging.getLogger("pausepoint.runtime.temporal")

# The workflow runs the execution for as long as it lives: its lease never lapses.
LEASE_SECONDS = 100 * 365 * 24 * 3600.0
# Heartbeats are how a cancellation reaches a running task (the worker sends
# them to the server at most once a second, see ``worker.py``).
HEARTBEAT_SECONDS = 0.5
# Events a finishing checkpoint may add to a step (one per command refused then);
# read beyond the step's own when checking whether the store holds that step.
STORED_STEP_SLACK = 1000


def command_message(record: CommandRecord) -> CommandMessage:
    return CommandMessage(
        seq=record.seq,
        id=record.id,
        kind=record.kind,
        at=record.created_at,
        by=record.actor,
        reason=record.reason,
        payload=record.payload,
        traceparent=record.traceparent,
    )


class ExecutionActivities:
    """The activities, bound to this worker's store and settings."""

    def __init__(
        self,
        store: SqlStore,
        settings: Settings,
        *,
        env_for: Callable[[ExecutionRecord], Awaitable[EngineEnv]],
        clock: Callable[[], float],
        task_control: TaskControl | None = None,
    ) -> None:
        self.store = store
        self.task_control = task_control
        self.settings = settings
        self.committer = GroupCommitter(store)
        self._env_for = env_for
        self._clock = clock

    @activity.defn(name=LOAD_ACTIVITY)
    async def load_execution(self, execution_id: str) -> LoadedExecution:
        """Take the execution's lease and read its last checkpoint."""
        loaded = await self.store.claim_and_load(
            execution_id, TEMPORAL_OWNER, LEASE_SECONDS, self._clock(), None
        )
        if loaded is None:
            record = await self.store.get_execution(execution_id)
            if record is None:
                raise ApplicationError(f"execution {execution_id} not found", non_retryable=True)
            if ExecutionStatus(record.status).is_terminal:
                return LoadedExecution(status=record.status)
            # Retried until the other runner's lease expires.
            raise ApplicationError(
                f"execution {execution_id} is run by {record.lease_owner} (an embedded runtime "
                f"sharing the database); waiting for its lease to expire"
            )
        record = loaded.record
        flow = await self.store.get_flow(
            record.org_id, record.namespace, record.flow_id, record.flow_revision
        )
        if flow is None:
            raise ApplicationError(
                f"flow {record.namespace}.{record.flow_id} revision {record.flow_revision} of "
                f"execution {execution_id} not found",
                non_retryable=True,
            )
        env = await self._env_for(record)
        commands = await self.store.list_commands(execution_id)
        decided = [command.seq for command in commands if command.status != "pending"]
        state = dict(record.state)
        state["task_runs"] = {run["id"]: run for run in loaded.task_runs or ()}
        return LoadedExecution(
            status=record.status,
            state=state,
            event_seq=record.event_seq,
            flow_source=flow.source,
            flow_revision=flow.revision,
            secrets=dict(env.secrets),
            pending=[command_message(command) for command in loaded.pending],
            next_command_seq=max(decided, default=0) + 1,
            public_url=env.public_url,
        )

    @activity.defn(name=CHECKPOINT_ACTIVITY)
    async def checkpoint(self, projection: Projection) -> int:
        """Write one engine step; returns the execution's event sequence after it.

        Returns ``DIVERGED`` when the store already holds another step at this
        point (or finished the execution without this workflow): the workflow
        must continue from the store.
        """
        execution_id = projection.execution_id
        record = await self.store.get_execution(execution_id)
        if record is None:
            raise ApplicationError(f"execution {execution_id} not found", non_retryable=True)
        if record.event_seq > projection.event_seq - len(projection.events):
            # The store is past the point this step starts from: this step was written
            # already (a retried activity, a workflow task run again), or another one was.
            return await self._stored_step(record, projection)
        checkpoint = Checkpoint(
            execution_id=execution_id,
            owner=TEMPORAL_OWNER,
            status=projection.status,
            state=projection.state,
            started_at=projection.started_at,
            ended_at=projection.ended_at,
            updated_at=self._clock(),
            task_runs=projection.task_runs,
            events=[
                EventRecord(execution_id, event.seq, event.type, event.at, event.data)
                for event in projection.events
            ],
            command_results=[tuple(result) for result in projection.command_results],  # type: ignore[misc]
            event_seq=projection.event_seq,
            release=ExecutionStatus(projection.status).is_terminal,
        )
        if not await self.committer.commit(checkpoint):
            record = await self.store.get_execution(execution_id)
            if record is not None and ExecutionStatus(record.status).is_terminal:
                return DIVERGED  # finished without this workflow (say, a forced terminate)
            raise ApplicationError(
                f"execution {execution_id} is leased by another runner; the checkpoint waits"
            )
        return checkpoint.event_seq

    async def _stored_step(self, record: ExecutionRecord, projection: Projection) -> int:
        """The event sequence after ``projection`` if the store holds exactly this step.

        A workflow task that wrote its checkpoint can still be lost: its worker
        died, or a signal arrived as it completed. Temporal runs the task again,
        and the step it takes then is the same one (the same events, at other
        times) or, with more signals or task results in hand, another one. Only
        the same one may count as written.
        """
        if not projection.events:
            return DIVERGED  # the store has events this step never saw
        first = projection.events[0].seq
        stored = await self.store.read_events(
            record.id, after=first - 1, limit=len(projection.events) + STORED_STEP_SLACK
        )
        decided = {result[0] for result in projection.command_results}
        # A finishing step's checkpoint also refuses the commands left pending; those
        # command.rejected events are the store's, not the step's.
        own = [
            (event.type, event.data)
            for event in stored
            if event.type != "command.rejected" or event.data.get("command_id") in decided
        ]
        if own[: len(projection.events)] != [(e.type, e.data) for e in projection.events]:
            log.warning(
                "execution %s: the store holds another step from event %s on (a workflow task "
                "was lost after its checkpoint); continuing from the store",
                record.id,
                first,
            )
            return DIVERGED
        if ExecutionStatus(projection.status).is_terminal:
            return record.event_seq
        return projection.event_seq

    @activity.defn(name=RUN_TASK_ACTIVITY)
    async def run_task(self, task: TaskInput) -> TaskOutcome:
        """Run one attempt of a leaf task; cancellation reaches it through heartbeats."""
        logs: list[dict[str, Any]] = []
        clock = self._clock

        def record_log(level: str, message: str) -> None:
            logs.append({"level": level, "message": message, "at": clock()})

        context = LeafContext(
            execution_id=task.execution_id,
            task_run_id=f"{task.execution_id}/{task.task_run_id}",
            attempt=task.attempt,
            settings=self.settings,
            log=record_log,
            traceparent=task.traceparent,
            control=self.task_control,
        )
        heartbeat = asyncio.create_task(_heartbeat())
        try:
            outputs = await run_leaf(task.task_type, task.spec, context)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.worker_shutdown and not details.cancel_requested:
                # Nobody cancelled the task: it must run again on another worker, not
                # be reported cancelled (Temporal retries failures, not cancellations).
                raise ApplicationError(
                    f"the worker running task run {task.task_run_id} shut down"
                ) from None
            raise
        except TaskError as error:
            return TaskOutcome(succeeded=False, logs=logs, error=error.message)
        except Exception as error:  # a bug in an executor still fails only this task
            return TaskOutcome(succeeded=False, logs=logs, error=f"{type(error).__name__}: {error}")
        finally:
            heartbeat.cancel()
        return TaskOutcome(succeeded=True, outputs=outputs, logs=logs)


async def _heartbeat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_SECONDS)
