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
from typing import Any, TypeVar

from pausepoint.models import ControlResult, ExecutionView, TriggerView
from pausepoint.service import triggers
from pausepoint.service.auth import Principal
from pausepoint.service.concurrency import release_loop, stop_loop
from pausepoint.service.control import ControlLayer
from pausepoint.service.core import DEFAULT_ORG, keyed_id, new_id
from pausepoint.service.links import LinkPage, LinkRefused
from pausepoint.service.operations import Operation
from pausepoint.service.plane import ControlPlane, Reply
from pausepoint.service.requests import VoteRequest
from pausepoint.service.subflows import subflow_loop
from pausepoint.service.surface import SurfaceMixin
from pausepoint.service.taskcontrol import TaskResumer
from pausepoint.service.triggers import CatchUp, TriggerLoop
from pausepoint.service.views import event_view
from pausepoint.store.triggers import TriggerKey
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
    _trigger_loop: TriggerLoop | None = None  # a server's: fires schedules and Flow triggers
    _trigger_task: asyncio.Task[None] | None = None
    _subflows: asyncio.Task[None] | None = None  # delivers children's ends, sweeps cascades

    def _task_control(self) -> TaskControl:
        return TaskResumer(self)

    async def start(self) -> None:
        await super().start()
        if self.serve or self.run_executions:
            self._subflows = asyncio.create_task(subflow_loop(self), name="pausepoint-subflows")
        if self.serve:
            self._releaser = asyncio.create_task(release_loop(self), name="pausepoint-releaser")
            self._trigger_loop = TriggerLoop(self)
            self._trigger_task = asyncio.create_task(
                self._trigger_loop.run(), name="pausepoint-triggers"
            )

    async def stop(self, grace: float = 0.0) -> None:
        releaser, self._releaser = self._releaser, None
        await stop_loop(releaser)
        subflows, self._subflows = self._subflows, None
        await stop_loop(subflows)
        trigger_task, self._trigger_task = self._trigger_task, None
        await stop_loop(trigger_task)
        if self._trigger_loop is not None:
            await self._trigger_loop.stop()
            self._trigger_loop = None
        await super().stop(grace)

    # -- triggers ------------------------------------------------------------------

    async def fire_triggers(self) -> int:
        """One pass of the trigger loop now (a server runs it every ``trigger_interval``);
        how many executions it started. Fires nothing unless this process holds the lease."""
        if self._trigger_loop is None:
            self._trigger_loop = TriggerLoop(self)
        return await self._trigger_loop.tick()

    async def triggers(self, namespace: str, flow_id: str) -> list[TriggerView]:
        """A flow's triggers and their state."""
        return await triggers.list_triggers(self, namespace, flow_id)

    async def trigger(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerView:
        return await triggers.get_trigger(self, self._trigger_key(namespace, flow_id, trigger_id))

    async def pause_trigger(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerView:
        """Pause a trigger: it fires nothing until resumed."""
        key = self._trigger_key(namespace, flow_id, trigger_id)
        return await triggers.pause_trigger(self, key)

    async def resume_trigger(
        self, namespace: str, flow_id: str, trigger_id: str, *, catch_up: CatchUp = "DROP"
    ) -> TriggerView:
        """Resume a trigger; ``QUEUE`` fires what it missed while paused, ``DROP`` does not."""
        key = self._trigger_key(namespace, flow_id, trigger_id)
        return await triggers.resume_trigger(self, key, catch_up)

    async def fire_webhook(
        self,
        namespace: str,
        flow_id: str,
        key: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionView:
        """Start a flow from its Webhook trigger whose key is ``key`` (NotFound otherwise)."""
        return await triggers.fire_webhook(
            self,
            namespace,
            flow_id,
            key,
            body=body,
            headers=headers or {},
            parameters=parameters or {},
            idempotency_key=idempotency_key,
        )

    async def use_decision_link(
        self, token: str, decision: str, comment: str | None, inputs: dict[str, Any]
    ) -> tuple[LinkPage, ControlResult]:
        """Vote through a link, as its approver, through the control plane's chain."""
        page = await self.open_decision_link(token)
        link = page.link
        if link.action != "review" and decision != link.action:
            raise LinkRefused(f"this link can only {link.action}", http_status=409)
        principal = Principal(link.org_id, "operator", link.approver, link.groups)
        request = VoteRequest(
            execution_id=link.execution_id,
            decision=decision,
            pause_id=link.pause_id,
            comment=comment,
            inputs=inputs,
            reason="decision link",
        )
        key = f"link:{link.nonce}:{decision}"
        reply = await self.call(request, principal, idempotency_key=key)
        return page, reply.value

    def _trigger_key(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerKey:
        return TriggerKey(self.org_id, namespace, flow_id, trigger_id)

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
