"""The control plane's chain: authorize → idempotency → audit → implementation.

Every operation a caller asks for (an HTTP route, a dialect's route, a remote
CLI command) enters here as one frozen dataclass with the caller's
``Principal``, the way Temporal's client interceptors each take one input
dataclass and hand it to the next, the implementation at the end. Nothing calls
around the chain, so a rule added to a step holds for every route at once.

- **Authorize**: the caller's role must reach the operation's; the engine the
  operation runs on is scoped to the caller's organization, so another
  organization's ids are unknown ids.
- **Idempotency**: an ``Idempotency-Key`` on an operation that allows one is
  reserved atomically; a repeat with the same operation returns the first
  result (``Reply.replayed``), a repeat with another operation is refused
  (422 naming the header), a concurrent twin waits for the first one's result.
  A failure frees the key for a retry.
- **Audit**: control commands carry the caller as their actor, the request id
  and the caller's W3C ``traceparent`` into the durable command record (the
  audit trail of an execution; a start keeps the traceparent in the execution);
  every operation that changes something is also logged on ``pausepoint.audit``
  and, with OpenTelemetry switched on, is a span in the caller's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import TypeAdapter

from pausepoint.errors import (
    Conflict,
    FieldError,
    InvalidInput,
    PausepointError,
    StoreUnavailable,
)
from pausepoint.service.auth import Principal
from pausepoint.service.operations import BulkRequest, Operation, StartRequest
from pausepoint.service.requests import ControlRequest, VoteRequest
from pausepoint.store.access import IdempotencyRecord
from pausepoint.tracecontext import TraceContext
from pausepoint.tracing import tracing_for

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine

R = TypeVar("R")

audit_log = logging.getLogger("pausepoint.audit")

# Fields that say who asked or how, not what: two requests differing only in them
# are the same request for an Idempotency-Key.
_NOT_THE_REQUEST = frozenset({"actor", "request_id", "traceparent", "idempotency_key", "wait"})
_IDEMPOTENCY_METHOD = "CALL"


@dataclass(frozen=True)
class Call(Generic[R]):
    """One operation on its way through the chain."""

    operation: Operation[R]
    principal: Principal
    idempotency_key: str | None = None
    request_id: str | None = None
    trace_context: TraceContext | None = None


@dataclass(frozen=True)
class Reply(Generic[R]):
    value: R
    replayed: bool = False  # the first result for a repeated Idempotency-Key


Step = Callable[[Call[Any]], Awaitable[Reply[Any]]]


def fingerprint(operation: Operation[Any]) -> str:
    """What an Idempotency-Key is bound to: the operation and its arguments."""
    fields = {
        f.name: getattr(operation, f.name)
        for f in dataclasses.fields(operation)
        if f.name not in _NOT_THE_REQUEST
    }
    text = json.dumps([operation.name, fields], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def reservation(org_id: str, key: str, operation: Operation[Any], at: float) -> IdempotencyRecord:
    """The record that reserves ``key`` for ``operation`` until its result is stored."""
    return IdempotencyRecord(
        org_id, key, _IDEMPOTENCY_METHOD, operation.name, fingerprint(operation), 0, None, at
    )


class ControlPlane:
    """The chain, built once per engine; ``call`` is its only entry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._chain: Step = self._authorize
        self._adapters: dict[type[Any], TypeAdapter[Any]] = {}
        self.tracing = tracing_for(engine.settings)
        self._releasing: set[asyncio.Task[None]] = set()

    async def call(
        self,
        operation: Operation[R],
        principal: Principal,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        trace_context: TraceContext | None = None,
    ) -> Reply[R]:
        """Run ``operation`` for ``principal``; raises the operation's ``PausepointError``s,
        ``Forbidden`` (403) for a role too low, ``InvalidInput`` for a misused key."""
        reply: Reply[R] = await self._chain(
            Call(operation, principal, idempotency_key, request_id, trace_context)
        )
        return reply

    # -- the steps, in order ------------------------------------------------------------

    async def _authorize(self, call: Call[Any]) -> Reply[Any]:
        operation = call.operation
        call.principal.require(operation.required_role, operation.action)
        return await self._idempotency(call)

    async def _idempotency(self, call: Call[Any]) -> Reply[Any]:
        key, operation = call.idempotency_key, call.operation
        if key is None or not operation.idempotent:
            return await self._audit(call)
        engine, org_id = self.engine, call.principal.org_id
        mine = reservation(org_id, key, operation, engine.clock())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + engine.settings.command_wait_timeout + 5
        while True:
            try:
                record = await self._claim(mine)
            except StoreUnavailable:
                # The reservation may have landed with its answer lost: free it once the
                # database is back, or the caller's retry would find it "in progress".
                self._release_later(mine)
                raise
            if record is None:
                break
            if record.body_hash != mine.body_hash or record.path != mine.path:
                raise InvalidInput(
                    "Idempotency-Key was already used for a different request",
                    [
                        FieldError(
                            ("header", "Idempotency-Key"),
                            "already used with another body or path; use a new key",
                            "idempotency_conflict",
                        )
                    ],
                )
            if record.status_code:
                return Reply(self._adapter(operation).validate_python(record.response), True)
            if loop.time() > deadline:
                raise Conflict("a request with this Idempotency-Key is still in progress; retry")
            await asyncio.sleep(engine.settings.poll_interval / 4)
        try:
            reply = await self._audit(call)
        except BaseException:
            # Freed for a retry: the request failed, or its caller went away.
            try:
                await asyncio.shield(engine.store.release_idempotency(org_id, key))
            except StoreUnavailable:
                # The database is away (which is likely why the request failed): free the
                # key once it is back, or the caller's retry would wait for an answer that
                # never comes until the reservation counts as abandoned.
                self._release_later(mine)
            raise
        result = self._adapter(operation).dump_python(reply.value, mode="json")
        try:
            await engine.store.complete_idempotency(org_id, key, 200, result)
        except StoreUnavailable:
            # Done, but its answer not stored: the caller gets a 503 and retries, which
            # replays the operation's own record (the command's key, the keyed execution).
            self._release_later(mine)
            raise
        return reply

    async def _claim(self, mine: IdempotencyRecord) -> IdempotencyRecord | None:
        """Claim ``mine``'s key (None when it is ours now, else the record holding it).

        A caller cancelled while the claim is being written gives the key back once the
        claim lands: otherwise the key would stay "in progress" with nobody to answer,
        and the caller's retry (a task re-run after its worker was taken for dead) would
        wait for that answer until it gave up."""
        claiming = asyncio.ensure_future(self.engine.store.claim_idempotency(mine))
        try:
            return await asyncio.shield(claiming)
        except asyncio.CancelledError:
            claiming.add_done_callback(functools.partial(self._give_back, mine))
            raise

    def _give_back(
        self, mine: IdempotencyRecord, claiming: asyncio.Future[IdempotencyRecord | None]
    ) -> None:
        if claiming.cancelled() or claiming.exception() is not None:
            return
        if claiming.result() is None:  # the claim was ours: free it
            release = asyncio.ensure_future(self._release(mine.org_id, mine.key))
            self._releasing.add(release)
            release.add_done_callback(self._releasing.discard)

    def _release_later(self, mine: IdempotencyRecord) -> None:
        release = asyncio.ensure_future(self._release_when_back(mine))
        self._releasing.add(release)
        release.add_done_callback(self._releasing.discard)

    async def _release_when_back(self, mine: IdempotencyRecord) -> None:
        """Free ``mine``'s reservation (only that one: a retry may hold the key by then)."""
        # Quietly: the loops of the runtime already log the outage, once.
        delay = 0.1
        while True:
            try:
                await self.engine.store.release_idempotency(
                    mine.org_id, mine.key, claimed_at=mine.created_at
                )
            except StoreUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except Exception:  # a store closing at shutdown: the reservation lapses instead
                return
            return

    async def _release(self, org_id: str, key: str) -> None:
        with contextlib.suppress(Exception):  # a store closing at shutdown: nothing to free
            await self.engine.store.release_idempotency(org_id, key)

    async def _audit(self, call: Call[Any]) -> Reply[Any]:
        operation = call.operation
        trace = call.trace_context
        traceparent = trace.traceparent if trace else None
        if isinstance(operation, ControlRequest | BulkRequest):
            operation = dataclasses.replace(
                operation,
                actor=call.principal.subject,
                request_id=call.request_id,
                traceparent=traceparent,
            )
        if (
            isinstance(operation, ControlRequest | StartRequest | BulkRequest)
            and call.idempotency_key
        ):
            operation = dataclasses.replace(operation, idempotency_key=call.idempotency_key)
        if isinstance(operation, StartRequest):
            operation = dataclasses.replace(
                operation, traceparent=traceparent, actor=call.principal.subject
            )
        if isinstance(operation, VoteRequest):
            operation = dataclasses.replace(
                operation, groups=call.principal.groups, role=call.principal.role
            )
        if operation.required_role == "viewer":
            return await self._implement(operation, call.principal)
        outcome = "error"
        try:
            with self.tracing.span(
                f"pausepoint.{operation.name}",
                traceparent=traceparent,
                tracestate=trace.tracestate if trace else None,
                attributes=_span_attributes(operation, call),
                server=True,
            ):
                reply = await self._implement(operation, call.principal)
            outcome = "ok"
            return reply
        except PausepointError as error:
            outcome = f"refused ({error.http_status}): {error.message}"
            raise
        finally:
            audit_log.info(
                "%s %s by %s in %s: %s",
                operation.name,
                operation.target or "-",
                call.principal.subject,
                call.principal.org_id,
                outcome,
                extra={
                    "operation": operation.name,
                    "target": operation.target,
                    "actor": call.principal.subject,
                    "org": call.principal.org_id,
                    "request_id": call.request_id,
                    "traceparent": traceparent,
                    "outcome": outcome,
                },
            )

    async def _implement(self, operation: Operation[Any], principal: Principal) -> Reply[Any]:
        return Reply(await operation.run(self.engine.as_org(principal.org_id)))

    def _adapter(self, operation: Operation[Any]) -> TypeAdapter[Any]:
        kind = type(operation)
        adapter = self._adapters.get(kind)
        if adapter is None:
            adapter = self._adapters[kind] = TypeAdapter(operation.result_type)
        return adapter


def _span_attributes(operation: Operation[Any], call: Call[Any]) -> dict[str, str | int]:
    """What a control request's span says: the operation, its target, who asked and where."""
    attributes: dict[str, str | int] = {
        "pausepoint.operation": operation.name,
        "pausepoint.actor": call.principal.subject,
        "pausepoint.org": call.principal.org_id,
    }
    if operation.target:
        attributes["pausepoint.target"] = operation.target
    if call.request_id:
        attributes["pausepoint.request_id"] = call.request_id
    return attributes
