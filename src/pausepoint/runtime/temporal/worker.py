"""A Temporal worker running pausepoint executions: the workflow and its activities."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import TracebackType

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from pausepoint.config import Settings
from pausepoint.engine.interpreter import EngineEnv
from pausepoint.runtime.temporal.activities import ExecutionActivities
from pausepoint.runtime.temporal.workflow import ExecutionWorkflow
from pausepoint.store.records import ExecutionRecord
from pausepoint.store.sql import SqlStore
from pausepoint.tasks import shutdown_executors
from pausepoint.tasks.context import TaskControl

# The engine and the flow language are deterministic by design; Jinja2 imports its
# submodules lazily, which the sandbox cannot do, and pydantic/yaml are pure.
PASSTHROUGH_MODULES = ("pausepoint", "jinja2", "markupsafe", "pydantic", "pydantic_core", "yaml")
# How often, at most, a running task's heartbeat reaches the server: also how
# long a cancellation may take to reach the task.
HEARTBEAT_THROTTLE = timedelta(seconds=1)
STICKY_TIMEOUT_SECONDS = 10.0  # Temporal's default


class ExecutionWorker:
    """Polls the task queue and runs executions until the ``async with`` block ends.

    Start as many as needed, on as many machines: Temporal spreads the work,
    and a worker that dies has its workflows and tasks taken over by the others.
    """

    def __init__(
        self,
        client: Client,
        store: SqlStore,
        settings: Settings,
        *,
        env_for: Callable[[ExecutionRecord], Awaitable[EngineEnv]],
        clock: Callable[[], float],
        task_control: TaskControl | None = None,
    ) -> None:
        self.activities = ExecutionActivities(
            store, settings, env_for=env_for, clock=clock, task_control=task_control
        )
        restrictions = dataclasses.replace(SandboxRestrictions.default).with_passthrough_modules(
            *PASSTHROUGH_MODULES
        )
        self._worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[ExecutionWorkflow],
            activities=[
                self.activities.load_execution,
                self.activities.checkpoint,
                self.activities.run_task,
            ],
            workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_period),
            # A worker that died keeps its cached workflows' next steps until this passes.
            sticky_queue_schedule_to_start_timeout=timedelta(
                seconds=min(STICKY_TIMEOUT_SECONDS, settings.temporal_heartbeat_timeout)
            ),
        )

    async def __aenter__(self) -> ExecutionWorker:
        self.activities.committer.start()
        await self._worker.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._worker.__aexit__(exc_type, exc, tb)
        finally:
            await self.activities.committer.stop()
            await shutdown_executors()
