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
import hashlib
import json
from typing import Any, TypeVar

from pausepoint.engine.state import iso
from pausepoint.errors import Conflict
from pausepoint.models import ControlResult, ExecutionView, TriggerView
from pausepoint.service import triggers
from pausepoint.service.auth import Principal
from pausepoint.service.callbacks import CallbackOutcome, CallbackToken, verify_callback
from pausepoint.service.concurrency import release_loop, stop_loop
from pausepoint.service.control import ControlLayer
from pausepoint.service.core import DEFAULT_ORG, keyed_id, new_id
from pausepoint.service.links import LinkPage, LinkRefused
from pausepoint.service.operations import Operation
from pausepoint.service.plane import ControlPlane, Reply
from pausepoint.service.requests import CallbackRequest, HeartbeatRequest, VoteRequest
from pausepoint.service.retention import retention_loop
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
    _retention: asyncio.Task[None] | None = None  # a server's: purges what retention allows

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
            if self.settings.retention:
                self._retention = asyncio.create_task(
                    retention_loop(self), name="pausepoint-retention"
                )

    async def stop(self, grace: float = 0.0) -> None:
        releaser, self._releaser = self._releaser, None
        await stop_loop(releaser)
        retention, self._retention = self._retention, None
        await stop_loop(retention)
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

    async def complete_callback(self, token: str, inputs: dict[str, Any]) -> CallbackOutcome:
        """Complete the Pause task a callback token names (see service/callbacks.py)."""
        parsed = verify_callback(token, self.callback_key, self.clock())
        prior = await self._callback_record(parsed)
        if prior is not None and prior["status"] in ("kept", "applied"):
            return _outcome(parsed, prior, replayed=True)
        principal = Principal(parsed.org_id, "operator", f"callback:{parsed.task_id}")
        request = CallbackRequest(
            execution_id=parsed.execution_id,
            task_id=parsed.task_id,
            inputs=inputs,
            reason="callback",
        )
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
        key = f"callback:{parsed.execution_id}:{parsed.task_id}:{digest}"
        try:
            await self.call(request, principal, idempotency_key=key)
        except Conflict:
            prior = await self._callback_record(parsed)
            if prior is not None and prior["status"] in ("kept", "applied"):
                return _outcome(parsed, prior, replayed=True)  # another completion won
            raise
        record = await self._callback_record(parsed)
        if record is None or record["status"] == "ended":
            return CallbackOutcome(
                parsed.execution_id, parsed.task_id, "accepted", inputs, iso(self.clock()), False
            )
        return _outcome(parsed, record, replayed=False)

    async def callback_heartbeat(self, token: str) -> None:
        """Keep a callback's Pause task waiting: its heartbeatTimeout starts again."""
        parsed = verify_callback(token, self.callback_key, self.clock())
        await self._callback_record(parsed)  # 404 for an execution that is not there
        principal = Principal(parsed.org_id, "operator", f"callback:{parsed.task_id}")
        request = HeartbeatRequest(
            execution_id=parsed.execution_id, task_id=parsed.task_id, reason="heartbeat"
        )
        await self.call(request, principal)

    async def _callback_record(self, parsed: CallbackToken) -> dict[str, Any] | None:
        execution = await self.store.get_execution(parsed.execution_id)
        if execution is None or execution.org_id != parsed.org_id:
            raise LinkRefused(f"execution {parsed.execution_id} was not found", http_status=404)
        record: dict[str, Any] | None = (execution.state.get("callbacks") or {}).get(parsed.task_id)
        return record

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


def _outcome(parsed: CallbackToken, record: dict[str, Any], *, replayed: bool) -> CallbackOutcome:
    return CallbackOutcome(
        parsed.execution_id,
        parsed.task_id,
        record["status"],
        record.get("inputs", {}),
        iso(record["at"]),
        replayed,
    )
