"""A Temporal worker running pausepoint executions: the workflow and its activities.

The Temporal SDK's worker retries its polls while the frontend is unreachable
and picks up again when it returns; but an error it cannot classify as
passing, once it has lasted a while, or a frontend that cannot be reached when
the worker starts, ends it for good, and ``async with Worker`` then cancels its
host: the process would die, or go on without polling. :class:`ExecutionWorker`
keeps its process instead: it runs one SDK worker after another, waiting longer
after each that ended with an error (up to a ceiling), until it is told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import TracebackType

from temporalio.client import Client
from temporalio.service import ServiceClient
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
# Waits before starting another SDK worker after one ended with an error: the first,
# and the ceiling they double up to. One that ran past the ceiling starts the count over.
RESTART_FIRST_SECONDS = 0.5
RESTART_CEILING_SECONDS = 15.0

log = logging.getLogger("pausepoint.runtime.temporal")


class ExecutionWorker:
    """Polls the task queue and runs executions until the ``async with`` block ends.

    Start as many as needed, on as many machines: Temporal spreads the work,
    and a worker that dies has its workflows and tasks taken over by the others.
    Temporal going away does not end it (see the module's docstring):
    ``stopped`` counts the SDK workers that ended unasked, ``restarts`` the
    replacements started.
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
        self._client = client
        self._settings = settings
        self._worker = self._new_worker(client)
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.stopped = 0
        self.restarts = 0

    def _new_worker(self, client: Client) -> Worker:
        """An SDK worker (each runs once: a replacement is a new one)."""
        settings = self._settings
        restrictions = dataclasses.replace(SandboxRestrictions.default).with_passthrough_modules(
            *PASSTHROUGH_MODULES
        )
        return Worker(
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

    @property
    def polling(self) -> bool:
        """Whether an SDK worker is running now (False while waiting to start another)."""
        return self._worker.is_running

    async def __aenter__(self) -> ExecutionWorker:
        self.activities.committer.start()
        self._supervisor = asyncio.create_task(self._supervise(), name="pausepoint-worker")
        return self

    async def _supervise(self) -> None:
        """Run SDK workers one after another until :meth:`__aexit__` says stop."""
        loop = asyncio.get_running_loop()
        wait = RESTART_FIRST_SECONDS
        while True:
            began = loop.time()
            try:
                await self._worker.run()
                ended: str = "on its own"
            except Exception as error:
                ended = f"with {type(error).__name__}: {error}"
            if self._stopping:
                return
            self.stopped += 1
            if loop.time() - began > RESTART_CEILING_SECONDS:
                wait = RESTART_FIRST_SECONDS
            log.warning(
                "the Temporal worker for task queue %r stopped %s; starting another in %.1fs",
                self._settings.temporal_task_queue,
                ended,
                wait,
            )
            while True:
                await asyncio.sleep(wait)
                wait = min(wait * 2, RESTART_CEILING_SECONDS)
                try:
                    self._worker = self._new_worker(await self._reconnect())
                    break
                except RuntimeError as error:
                    log.warning(
                        "cannot start another Temporal worker yet (%s); trying again in %.1fs",
                        error,
                        wait,
                    )
            self.restarts += 1

    async def _reconnect(self) -> Client:
        """A connection of its own for a replacement worker, configured like the first.

        The SDK keeps a worker that failed to start registered with its client,
        and refuses another on the same task queue through that client.
        Raises RuntimeError while Temporal cannot be reached.
        """
        config = self._client.config()
        config["service_client"] = await ServiceClient.connect(self._client.service_client.config)
        return Client(**config)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        try:
            if self._worker.is_running:
                await self._worker.shutdown()  # lets running tasks finish, within the grace period
            if self._supervisor is not None:
                # Still starting a worker, or waiting to: nothing runs that needs to finish.
                self._supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._supervisor
        finally:
            await self.activities.committer.stop()
            await shutdown_executors()
