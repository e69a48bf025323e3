"""Firing triggers: schedules, webhooks and Flow triggers (``flow/triggers.py``).

Flow triggers are judged in ``service/flow_triggers.py``; this module runs the
scheduler's loop, answers webhooks and pauses and resumes triggers.

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
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pausepoint.engine.scheduler import truthy
from pausepoint.errors import Conflict, NotFound, PausepointError, StoreUnavailable, Unauthorized
from pausepoint.flow.model import Flow
from pausepoint.flow.templates import render
from pausepoint.flow.triggers import (
    FlowTrigger,
    ScheduleTrigger,
    Trigger,
    WebhookTrigger,
)
from pausepoint.models import ExecutionView, TriggerView
from pausepoint.runtime.backoff import StoreBackoff
from pausepoint.service.auth import Principal
from pausepoint.service.core import iso_or_none
from pausepoint.service.flow_triggers import FlowTriggers
from pausepoint.service.operations import StartRequest
from pausepoint.store.triggers import TriggerKey, TriggerRecord

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
        next_fire=iso_or_none(record.next_at) if record.type == "schedule" else None,
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
        self.flow_triggers = FlowTriggers(self)
        self._holding = False  # whether this process held the lease at its last pass

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        interval = self.engine.settings.trigger_interval
        backoff = StoreBackoff("firing triggers")
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as error:
                # Ticks missed meanwhile are fired (or dropped) by each trigger's policy
                # once the store is back: its cursor did not move.
                backoff.note(error)
            except Exception:
                log.exception("firing triggers failed; retrying")
            else:
                backoff.recovered()
            await asyncio.sleep(interval)

    async def tick(self) -> int:
        """One pass: fire what is due, if this process holds the lease; how many started."""
        engine = self.engine
        now = engine.clock()
        ttl = max(engine.settings.lease_ttl, engine.settings.trigger_interval * 3)
        if not await engine.store.take_scheduler_lease(SCHEDULER, self.owner, ttl, now):
            self._holding = False
            return 0
        if not self._holding:
            # Another process may have fired meanwhile: what this one remembers is stale.
            self.flow_triggers.forget()
            self._holding = True
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
            started += await self.fire(
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
        records = await store.flow_trigger_rows()
        if not records:
            # Nothing listens: history stays history for a Flow trigger added later.
            await store.set_scheduler_cursor(SCHEDULER, self.owner, now)
            return 0
        listeners = await self.flow_triggers.listeners(records)
        changes = await self.flow_triggers.feed.since(cursor - LOOKBACK_SECONDS, listeners)
        if not changes:
            return 0
        started = await self.flow_triggers.judge_all(listeners, changes)
        latest = max(change.at for change in changes)
        if latest > cursor:
            await store.set_scheduler_cursor(SCHEDULER, self.owner, latest)
        return started

    # -- starting -----------------------------------------------------------------------

    async def _flow(self, key: TriggerKey) -> Flow | None:
        try:
            return await self.engine.as_org(key.org_id).flow(key.namespace, key.flow_id)
        except NotFound:
            return None

    async def fire(
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

    ``inputs`` may be templates reading ``trigger.*``, ``flow.*`` and ``vars.*``; they
    render to text, as Kestra's do (the flow's typed inputs read the text).
    """
    context = {
        "trigger": variables,
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
        "vars": dict(flow.variables),
    }
    rendered = render(inputs, context, where=f"trigger '{key.trigger_id}' inputs", as_string=True)
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
    elif isinstance(trigger, FlowTrigger) and trigger.has_window and catch_up == "DROP":
        values["next_at"] = now  # its window starts again: what ended while paused is dropped
    await engine.store.update_trigger(key, **values)
    if isinstance(trigger, FlowTrigger) and catch_up == "QUEUE" and record.paused_at is not None:
        resumed = await engine.store.get_trigger(key)
        assert resumed is not None
        # What it missed while paused, judged as the scheduler would have (each change once:
        # the executions it starts are keyed by the change).
        flow_triggers = TriggerLoop(engine).flow_triggers
        listener = await flow_triggers.listener(resumed)
        if listener is not None:
            changes = await flow_triggers.feed.since(record.paused_at, [listener], remember=False)
            await flow_triggers.judge_all([listener], changes)
    return await get_trigger(engine, key)


# -- webhooks ---------------------------------------------------------------------------

# A webhook's caller may send credentials meant for someone else: the flow never sees them.
PRIVATE_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})


@dataclass(frozen=True)
class WebhookCall:
    """A request to a flow's webhook, as the route read it.

    ``headers`` have lower-case names (the flow does not see :data:`PRIVATE_HEADERS`);
    ``raw_body`` is what a ``signature`` is computed over (None: not known, as
    when the engine is called from Python, and then a signed webhook refuses).
    """

    namespace: str
    flow_id: str
    key: str
    body: Any = None
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    multipart: bool = False
    idempotency_key: str | None = None


@dataclass(frozen=True)
class WebhookAnswer:
    """What the webhook answers: ``status``, and the execution it started (None: its
    ``when`` was false, nothing started); with ``wait``, the execution as it ended,
    and with ``returnOutputs`` the flow's ``outputs`` are the body."""

    status: int
    execution: ExecutionView | None = None
    returns_outputs: bool = False
    content_type: str | None = None

    @property
    def outputs(self) -> Any:
        return (self.execution.outputs if self.execution is not None else None) or {}


def webhook_key(engine: Engine, namespace: str, flow_id: str, trigger_id: str) -> str:
    """The key of a Webhook trigger written without one (Kestra's first Webhook generated
    it): derived from the installation's secret, so it is the same in every process
    and across restarts, and never guessable from the flow."""
    secret = engine.secret_box.derive("webhook-keys")
    what = f"{engine.org_id}\0{namespace}\0{flow_id}\0{trigger_id}".encode()
    digest = hmac.new(secret, what, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


async def _flow_context(engine: Engine, flow: Flow, texts: list[str]) -> dict[str, Any]:
    context: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
        "vars": dict(flow.variables),
    }
    if any("secret" in text for text in texts):
        context["secrets"] = await engine._secrets_for(engine.org_id)
    return context


async def _expected_key(engine: Engine, flow: Flow, trigger: WebhookTrigger) -> str | None:
    if trigger.key is None:
        return webhook_key(engine, flow.namespace, flow.id, trigger.id)
    if "{{" not in trigger.key and "{%" not in trigger.key:
        return trigger.key
    try:
        context = await _flow_context(engine, flow, [trigger.key])
        return str(
            render(trigger.key, context, where=f"trigger '{trigger.id}' key", as_string=True)
        )
    except PausepointError as error:
        log.warning("webhook %s of %s.%s: %s", trigger.id, flow.namespace, flow.id, error.message)
        return None


async def _webhook_of(engine: Engine, flow: Flow, key: str) -> WebhookTrigger | None:
    found = None
    for trigger in flow.triggers:
        if not isinstance(trigger, WebhookTrigger) or trigger.disabled:
            continue
        expected = await _expected_key(engine, flow, trigger)
        # Every trigger is compared, in constant time: the answer's timing tells no key.
        if expected is not None and hmac.compare_digest(expected.encode(), key.encode()):
            found = found or trigger
    return found


async def _check_signature(
    engine: Engine, flow: Flow, trigger: WebhookTrigger, call: WebhookCall
) -> None:
    """Refuse (401) a call whose signature is missing or wrong; nothing starts then."""
    signature = trigger.signature
    if signature is None:
        return
    refused = Unauthorized(
        f"the webhook's {signature.header} signature is missing or does not match the body"
    )
    given = call.headers.get(signature.header.lower())
    if call.raw_body is None or call.multipart or given is None:
        raise refused  # a multipart body is re-encoded by every client: it cannot be signed
    if not given.startswith(signature.prefix):
        raise refused
    try:
        context = await _flow_context(engine, flow, [signature.secret])
        secret = render(
            signature.secret,
            context,
            where=f"trigger '{trigger.id}' signature.secret",
            as_string=True,
        )
    except PausepointError as error:
        log.warning("webhook %s of %s.%s: %s", trigger.id, flow.namespace, flow.id, error.message)
        raise refused from None
    expected = hmac.new(str(secret).encode(), call.raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given[len(signature.prefix) :].strip().lower()):
        raise refused


async def answer_webhook(engine: Engine, call: WebhookCall) -> WebhookAnswer:
    """Start the flow from its Webhook trigger whose key is ``call.key``.

    A wrong key, an unknown flow, a disabled or paused trigger all raise the same
    ``NotFound`` and start nothing. A signed trigger refuses a missing or wrong
    signature (``Unauthorized``). A false ``when`` starts nothing (status 204).
    With ``wait``, the answer comes when the execution ends: 200, or 500 when it
    failed (Kestra's), or the trigger's ``responseCode``.
    """
    missing = NotFound(f"no webhook {call.namespace}/{call.flow_id} with this key")
    try:
        flow = await engine.flow(call.namespace, call.flow_id)
    except NotFound:
        raise missing from None
    trigger = await _webhook_of(engine, flow, call.key)
    if trigger is None:
        raise missing
    trigger_key = TriggerKey(engine.org_id, call.namespace, call.flow_id, trigger.id)
    record = await engine.store.get_trigger(trigger_key)
    if record is not None and record.paused:
        raise missing
    await _check_signature(engine, flow, trigger, call)
    headers = {name: value for name, value in call.headers.items() if name not in PRIVATE_HEADERS}
    variables = {"body": call.body, "headers": headers, "parameters": call.parameters}
    if trigger.when is not None:
        context = {**await _flow_context(engine, flow, [trigger.when]), "trigger": variables}
        if not truthy(render(trigger.when, context, where=f"trigger '{trigger.id}' when")):
            return WebhookAnswer(204)
    view = await start_for_trigger(
        engine,
        trigger_key,
        flow,
        dict(trigger.inputs),
        {},
        variables,
        idempotency=call.idempotency_key,
    )
    if not trigger.wait:
        return WebhookAnswer(200, view)
    ended = await engine.wait(view.id)
    status = 500 if ended.state in ("FAILED", "TIMED_OUT") else 200
    if trigger.response_code is not None:
        status = _response_code(trigger, ended, status)
    return WebhookAnswer(
        status,
        ended,
        returns_outputs=trigger.return_outputs,
        content_type=trigger.response_content_type if trigger.return_outputs else None,
    )


def _response_code(trigger: WebhookTrigger, ended: ExecutionView, default: int) -> int:
    """The trigger's ``responseCode`` (a template reads ``execution`` and ``outputs``);
    the default when it does not render to a status code."""
    context = {
        "execution": {"id": ended.id, "state": ended.state},
        "outputs": ended.outputs or {},
        "trigger": ended.trigger or {},
    }
    try:
        code = int(
            str(render(trigger.response_code, context, where="responseCode", as_string=True))
        )
    except (PausepointError, ValueError) as error:
        log.warning("webhook %s: responseCode: %s; answering %d", trigger.id, error, default)
        return default
    if not 100 <= code <= 599:
        log.warning(
            "webhook %s: responseCode %d is no status; answering %d", trigger.id, code, default
        )
        return default
    return code


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
    trigger all answer the same "not found", and nothing starts. A false ``when``
    is a ``Conflict`` (nothing started); a signed webhook refuses (there is no raw
    body to check): call it over HTTP.
    """
    call = WebhookCall(
        namespace,
        flow_id,
        key,
        body=body,
        headers={name.lower(): value for name, value in headers.items()},
        parameters=parameters,
        idempotency_key=idempotency_key,
    )
    answer = await answer_webhook(engine, call)
    if answer.execution is None:
        raise Conflict(
            f"the webhook's when condition of {namespace}.{flow_id} is false: nothing started"
        )
    return answer.execution
