"""``Engine``: the control plane of one process, and pausepoint's Python API.

It loads flows, starts executions, accepts control commands (recording each
durably before acknowledging it), reads state and follows events. Executions
run in the embedded runtime of this process, or of any other process sharing
the database, or on Temporal.

The class is built in layers, one module each, every layer using the ones
below it:

- ``core``: store, runtime, event feed, caches, lifecycle;
- ``access``: API keys and secrets;
- ``flows``: flow revisions and the parsed flow an execution runs;
- ``executions``: starting executions, listing and reading them as views;
- ``events``: reading, following and waiting, on the event feed;
- ``control``: control commands, bulk control and the audit trail.

In-process callers use its methods directly, with full rights (the local
administrator). Callers from outside (HTTP, remote CLI) go through
``Engine.call``: the control plane's chain (``service/plane.py``) that
authorizes them, applies their idempotency keys and audits what they change.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from pausepoint.service.auth import Principal
from pausepoint.service.concurrency import release_loop, stop_loop
from pausepoint.service.control import ControlLayer
from pausepoint.service.core import DEFAULT_ORG, keyed_id, new_id
from pausepoint.service.operations import Operation
from pausepoint.service.plane import ControlPlane, Reply
from pausepoint.service.surface import SurfaceMixin
from pausepoint.service.taskcontrol import TaskResumer
from pausepoint.service.views import event_view
from pausepoint.tasks.context import TaskControl
from pausepoint.tracecontext import TraceContext

R = TypeVar("R")

__all__ = ["DEFAULT_ORG", "Engine", "event_view", "keyed_id", "new_id"]


class Engine(SurfaceMixin, ControlLayer):
    """pausepoint in one process: store, control plane and runtime.

    Use as ``async with Engine(Settings(db="sqlite:///runs.db")) as engine: …``.
    With ``serve=True`` the process also picks up work left by others (a
    server); otherwise it runs only what it starts or is asked to continue.
    With ``run_executions=False`` it runs nothing at all: commands and new
    executions are recorded and left to the processes that serve the database.
    """

    _releaser: asyncio.Task[None] | None = None  # a server's: gives queued executions slots

    def _task_control(self) -> TaskControl:
        return TaskResumer(self)

    async def start(self) -> None:
        await super().start()
        if self.serve:
            self._releaser = asyncio.create_task(release_loop(self), name="pausepoint-releaser")

    async def stop(self, grace: float = 0.0) -> None:
        releaser, self._releaser = self._releaser, None
        await stop_loop(releaser)
        await super().stop(grace)

    @property
    def plane(self) -> ControlPlane:
        """The chain every outside caller's operation passes (shared by organization views)."""
        plane: ControlPlane | None = self._shared.plane
        if plane is None:
            plane = self._shared.plane = ControlPlane(self)
        return plane

    async def call(
        self,
        operation: Operation[R],
        principal: Principal,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        trace_context: TraceContext | None = None,
    ) -> Reply[R]:
        """Run ``operation`` for ``principal``: authorized, idempotent, audited.

        The result is ``Reply.value``; ``Reply.replayed`` says an idempotency key
        returned an earlier result. Raises what the operation raises (404, 409,
        422, …) and ``Forbidden`` (403) when the caller's role is too low."""
        return await self.plane.call(
            operation,
            principal,
            idempotency_key=idempotency_key,
            request_id=request_id,
            trace_context=trace_context,
        )
