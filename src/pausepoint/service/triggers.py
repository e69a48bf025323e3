"""Firing triggers: schedules, webhooks and Flow triggers (``flow/triggers.py``).

One loop per server (an engine with ``serve=True``) wakes every
``trigger_interval`` seconds; only the process holding the scheduler's lease
fires anything. Every execution a trigger starts goes through the control
plane as ``trigger:<namespace>.<flow>.<trigger>`` (operator role, the flow's
organization) and is keyed by what fired it — the schedule's tick, the ended
execution — so firing again after a crash finds the first execution instead
of starting a second. The same loop runs for both runtimes: it starts
executions through the engine, which hands them to Temporal when that is the
runtime, so schedules need no Temporal Schedules of their own and pausing a
trigger is one row.

Missed ticks (ticks more than ``trigger_misfire_grace`` seconds old when the
loop sees them, because nothing ran then) follow the schedule's
``recoverMissedSchedules``; a paused trigger fires nothing, and resuming it
either fires every tick missed while paused (``QUEUE``) or none (``DROP``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pausepoint.errors import NotFound, PausepointError
from pausepoint.flow.model import Flow
from pausepoint.flow.templates import render
from pausepoint.flow.triggers import (
    EndedExecution,
    FlowTrigger,
    ScheduleTrigger,
    Trigger,
    WebhookTrigger,
)
from pausepoint.models import ExecutionView, TriggerView
from pausepoint.service.auth import Principal
from pausepoint.service.core import iso_or_none
from pausepoint.service.operations import StartRequest
from pausepoint.store.triggers import EndedRow, TriggerKey, TriggerRecord

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine

log = logging.getLogger("pausepoint.triggers")

SCHEDULER = "triggers"
CatchUp = Literal["QUEUE", "DROP"]
# At most this many ticks of one schedule fire per pass (a long backfill goes on next pass).
TICKS_PER_PASS = 100
# Flow triggers look this far behind their cursor: an execution may be written after
# one that ended later. The execution they start is keyed, so looking twice is harmless.
LOOKBACK_SECONDS = 60.0
_FIRED_MEMORY = 10_000


def iso_tick(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _trigger_of(flow: Flow, trigger_id: str) -> Trigger | None:
    return next((trigger for trigger in flow.triggers if trigger.id == trigger_id), None)


def trigger_view(flow: Flow | None, record: TriggerRecord) -> TriggerView:
    trigger = _trigger_of(flow, record.key.trigger_id) if flow is not None else None
    return TriggerView(
        namespace=record.key.namespace,
        flow_id=record.key.flow_id,
        trigger_id=record.key.trigger_id,
        type=record.type,
        description=trigger.description if trigger is not None else None,
        disabled=bool(
            (trigger is not None and trigger.disabled) or (flow is not None and flow.disabled)
        ),
        paused=record.paused,
        paused_at=iso_or_none(record.paused_at),
        next_fire=iso_or_none(record.next_at),
        backfill_next=iso_or_none(record.backfill_at),
        last_fired_at=iso_or_none(record.last_fired_at),
        last_execution_id=record.last_execution_id,
        last_error=record.last_error,
    )


class TriggerLoop:
    """The scheduler of one server process (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.owner = f"{secrets.token_hex(4)}:{os.getpid()}:{socket.gethostname()}"[:64]
        self._fired: OrderedDict[str, None] = OrderedDict()  # flow-trigger keys fired here

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        interval = self.engine.settings.trigger_interval
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("firing triggers failed; retrying")
            await asyncio.sleep(interval)

    async def tick(self) -> int:
        """One pass: fire what is due, if this process holds the lease; how many started."""
        engine = self.engine
        now = engine.clock()
        ttl = max(engine.settings.lease_ttl, engine.settings.trigger_interval * 3)
        if not await engine.store.take_scheduler_lease(SCHEDULER, self.owner, ttl, now):
            return 0
        started = 0
        for record in await engine.store.due_triggers(now):
            started += await self._schedule(record, now)
        started += await self._flow_triggers(now)
        return started

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.engine.store.release_scheduler_lease(SCHEDULER, self.owner)

    # -- schedules ------------------------------------------------------------------

    async def _schedule(self, record: TriggerRecord, now: float) -> int:
        key = record.key
        flow = await self._flow(key)
        trigger = _trigger_of(flow, key.trigger_id) if flow is not None else None
        if flow is None or not isinstance(trigger, ScheduleTrigger):
            return 0  # the flow or the trigger is gone; saving the flow tidies the rows
        active = not (flow.disabled or trigger.disabled)
        ticks: list[float] = []
        backfilled: set[float] = set()
        backfill_at = record.backfill_at
        if backfill_at is not None and backfill_at <= now:
            end = min(record.backfill_end or now, now)
            while backfill_at is not None and backfill_at <= end and len(ticks) < TICKS_PER_PASS:
                ticks.append(backfill_at)
                backfill_at = trigger.next_tick(backfill_at)
            if backfill_at is not None and backfill_at > end:
                backfill_at = None
        backfilled = set(ticks)
        next_at = record.next_at
        if next_at is not None and next_at <= now:
            due: list[float] = []
            while next_at <= now and len(due) < TICKS_PER_PASS:
                due.append(next_at)
                next_at = trigger.next_tick(next_at)
            if next_at <= now:  # more than a pass's worth missed: the rest are dropped
                next_at = trigger.next_tick(now)
            ticks.extend(self._to_fire(record, trigger, due, now))
        claimed = await self.engine.store.advance_trigger(
            record,
            next_at=next_at,
            backfill_at=backfill_at,
            catch_up=None,
            updated_at=now,
        )
        if not claimed or not active:
            return 0  # another process moved it first, or nothing may start the flow
        started = 0
        for tick in sorted(set(ticks)):
            variables = {"date": iso_tick(tick), "next": iso_tick(trigger.next_tick(tick))}
            inputs, labels = dict(trigger.inputs), dict(trigger.labels)
            if tick in backfilled and trigger.backfill is not None:
                inputs |= trigger.backfill.inputs
                labels |= trigger.backfill.labels
            started += await self._fire(
                key, flow, inputs, labels, variables, fired_by=f"tick {iso_tick(tick)}"
            )
        return started

    def _to_fire(
        self, record: TriggerRecord, trigger: ScheduleTrigger, due: list[float], now: float
    ) -> list[float]:
        """Which due ticks fire: every one after a QUEUE resume, else per recoverMissedSchedules."""
        if record.catch_up == "QUEUE":
            return due
        grace = self.engine.settings.trigger_misfire_grace
        missed = [tick for tick in due if tick < now - grace]
        on_time = [tick for tick in due if tick >= now - grace]
        policy = trigger.recover_missed_schedules
        if policy == "ALL":
            return due
        if policy == "LAST":
            return on_time or missed[-1:]
        return on_time

    # -- Flow triggers --------------------------------------------------------------

    async def _flow_triggers(self, now: float) -> int:
        store = self.engine.store
        cursor = await store.scheduler_cursor(SCHEDULER)
        if cursor is None:
            await store.set_scheduler_cursor(SCHEDULER, self.owner, now)
            return 0  # the first pass ever: history does not fire anything
        listeners = await store.flow_trigger_rows()
        if not listeners:
            # Nothing listens: history stays history for a Flow trigger added later.
            await store.set_scheduler_cursor(SCHEDULER, self.owner, now)
            return 0
        ended = await store.ended_since(cursor - LOOKBACK_SECONDS)
        if not ended:
            return 0
        started = 0
        for row in ended:
            for record in listeners:
                if record.key.org_id != row.org_id or record.paused:
                    continue
                started += await self.fire_flow_trigger(record, row)
        latest = max(row.ended_at for row in ended)
        if latest > cursor:
            await store.set_scheduler_cursor(SCHEDULER, self.owner, latest)
        return started

    async def fire_flow_trigger(self, record: TriggerRecord, row: EndedRow) -> int:
        """Start the trigger's flow for execution ``row`` if its conditions hold (once)."""
        memo = f"{record.key}:{row.id}"
        key = record.key
        if memo in self._fired or (row.namespace, row.flow_id) == (key.namespace, key.flow_id):
            return 0  # fired already here, or its own execution (which would loop forever)
        flow = await self._flow(key)
        trigger = _trigger_of(flow, key.trigger_id) if flow is not None else None
        if flow is None or not isinstance(trigger, FlowTrigger):
            return 0
        if flow.disabled or trigger.disabled:
            return 0
        ended = EndedExecution(
            id=row.id,
            namespace=row.namespace,
            flow_id=row.flow_id,
            flow_revision=row.flow_revision,
            status=row.status,
            outputs=row.state.get("result") or {},
        )
        if not trigger.fires_for(ended):
            return 0
        variables = {
            "executionId": ended.id,
            "namespace": ended.namespace,
            "flowId": ended.flow_id,
            "flowRevision": ended.flow_revision,
            "state": ended.kestra_state,
            "outputs": ended.outputs,
        }
        started = await self._fire(
            key, flow, dict(trigger.inputs), {}, variables, fired_by=f"execution {row.id}"
        )
        self._fired[memo] = None
        if len(self._fired) > _FIRED_MEMORY:
            self._fired.popitem(last=False)
        return started

    # -- starting -----------------------------------------------------------------------

    async def _flow(self, key: TriggerKey) -> Flow | None:
        try:
            return await self.engine.as_org(key.org_id).flow(key.namespace, key.flow_id)
        except NotFound:
            return None

    async def _fire(
        self,
        key: TriggerKey,
        flow: Flow,
        inputs: dict[str, Any],
        labels: dict[str, str],
        variables: dict[str, Any],
        *,
        fired_by: str,
    ) -> int:
        """Start one execution for a trigger; 1 if it started (or had started already)."""
        now = self.engine.clock()
        try:
            view = await start_for_trigger(
                self.engine, key, flow, inputs, labels, variables, idempotency=fired_by
            )
        except PausepointError as error:
            log.warning(
                "trigger %s of %s.%s: %s", key.trigger_id, key.namespace, key.flow_id, error.message
            )
            await self.engine.store.update_trigger(
                key, last_error=f"{fired_by}: {error.message}", updated_at=now
            )
            return 0
        await self.engine.store.update_trigger(
            key,
            last_fired_at=now,
            last_execution_id=view.id,
            last_error=None,
            updated_at=now,
        )
        return 1


async def start_for_trigger(
    engine: Engine,
    key: TriggerKey,
    flow: Flow,
    inputs: dict[str, Any],
    labels: dict[str, str],
    variables: dict[str, Any],
    *,
    idempotency: str | None,
) -> ExecutionView:
    """Start ``flow`` as its trigger ``key``, through the control plane (audited, keyed).

    ``inputs`` may be templates reading ``trigger.*`` and ``flow.*``.
    """
    context = {
        "trigger": variables,
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
    }
    rendered = render(inputs, context, where=f"trigger '{key.trigger_id}' inputs")
    principal = Principal(
        key.org_id, "operator", f"trigger:{key.namespace}.{key.flow_id}.{key.trigger_id}"
    )
    request = StartRequest(
        namespace=key.namespace,
        flow_id=key.flow_id,
        inputs=rendered,
        labels=labels,
        trigger={"id": key.trigger_id, **variables},
    )
    idempotency_key = (
        f"trigger:{key.namespace}.{key.flow_id}.{key.trigger_id}:{idempotency}"
        if idempotency is not None
        else None
    )
    reply = await engine.call(request, principal, idempotency_key=idempotency_key)
    return reply.value


# -- what the API, the CLI and the UI call (through ``Engine``'s methods) -------------------


async def list_triggers(engine: Engine, namespace: str, flow_id: str) -> list[TriggerView]:
    flow = await engine.flow(namespace, flow_id)
    records = await engine.store.flow_triggers(engine.org_id, namespace, flow_id)
    return [trigger_view(flow, record) for record in records]


async def _found(engine: Engine, key: TriggerKey) -> tuple[Flow, Trigger, TriggerRecord]:
    flow = await engine.flow(key.namespace, key.flow_id)
    trigger = _trigger_of(flow, key.trigger_id)
    record = await engine.store.get_trigger(key)
    if trigger is None or record is None:
        raise NotFound(f"flow {key.namespace}.{key.flow_id} has no trigger {key.trigger_id!r}")
    return flow, trigger, record


async def get_trigger(engine: Engine, key: TriggerKey) -> TriggerView:
    flow, _, record = await _found(engine, key)
    return trigger_view(flow, record)


async def pause_trigger(engine: Engine, key: TriggerKey) -> TriggerView:
    """Pause: the trigger fires nothing until resumed (a no-op when already paused)."""
    _, _, record = await _found(engine, key)
    if not record.paused:
        now = engine.clock()
        await engine.store.update_trigger(key, paused=True, paused_at=now, updated_at=now)
    return await get_trigger(engine, key)


async def resume_trigger(engine: Engine, key: TriggerKey, catch_up: CatchUp) -> TriggerView:
    """Resume a paused trigger: ``QUEUE`` fires what it missed while paused, ``DROP`` not."""
    _, trigger, record = await _found(engine, key)
    if not record.paused:
        return await get_trigger(engine, key)
    now = engine.clock()
    values: dict[str, Any] = {"paused": False, "paused_at": None, "updated_at": now}
    if isinstance(trigger, ScheduleTrigger):
        if catch_up == "DROP":
            values["next_at"] = trigger.next_tick(now)
        else:
            values["catch_up"] = "QUEUE"
    await engine.store.update_trigger(key, **values)
    if isinstance(trigger, FlowTrigger) and catch_up == "QUEUE" and record.paused_at is not None:
        resumed = await engine.store.get_trigger(key)
        assert resumed is not None
        loop = TriggerLoop(engine)
        for row in await engine.store.ended_since(record.paused_at, limit=1000):
            if row.org_id == key.org_id:
                await loop.fire_flow_trigger(resumed, row)
    return await get_trigger(engine, key)


async def fire_webhook(
    engine: Engine,
    namespace: str,
    flow_id: str,
    key: str,
    *,
    body: Any,
    headers: dict[str, str],
    parameters: dict[str, Any],
    idempotency_key: str | None = None,
) -> ExecutionView:
    """Start ``flow_id`` from its Webhook trigger whose key is ``key``; 404 otherwise.

    The key is the secret: a wrong one, an unknown flow, a disabled or paused
    trigger all answer the same "not found", and nothing starts.
    """
    missing = NotFound(f"no webhook {namespace}/{flow_id} with this key")
    try:
        flow = await engine.flow(namespace, flow_id)
    except NotFound:
        raise missing from None
    trigger = next(
        (
            t
            for t in flow.triggers
            if isinstance(t, WebhookTrigger) and hmac.compare_digest(t.key.encode(), key.encode())
        ),
        None,
    )
    if trigger is None or trigger.disabled:
        raise missing
    trigger_key = TriggerKey(engine.org_id, namespace, flow_id, trigger.id)
    record = await engine.store.get_trigger(trigger_key)
    if record is not None and record.paused:
        raise missing
    variables = {"body": body, "headers": headers, "parameters": parameters}
    return await start_for_trigger(
        engine, trigger_key, flow, {}, {}, variables, idempotency=idempotency_key
    )
