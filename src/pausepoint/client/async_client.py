"""The asyncio client."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

import httpx

from pausepoint.client.calls import (
    TERMINAL_STATES,
    BulkOp,
    BulkSelection,
    Call,
    Calls,
    EventStream,
    LinkDecision,
    ReviewDecision,
    T,
    Until,
    auth_headers,
    check_url,
    condition_of,
    pause_body,
    resume_body,
    tls_verification,
    without_credentials,
)
from pausepoint.client.errors import error_from, unreachable
from pausepoint.client.tokens import CallbackOutcome, MintedCallback, MintedLink
from pausepoint.models import (
    ApprovalPage,
    CommandView,
    ControlResult,
    EventView,
    ExecutionView,
    MessageRole,
    StateView,
    TriggerView,
)
from pausepoint.wire import (
    BulkReply,
    ExecutionPage,
    ExecutionSummary,
    FlowDetail,
    FlowRecordView,
    FlowSummary,
    FlowValidation,
    Health,
    TerminateReply,
    ValidatedInputs,
)


class AsyncClient:
    """A pausepoint server, over HTTP, for asyncio code.

    ``api_key`` is sent as ``X-API-Key``, ``token`` (a JWT) as a bearer token.
    ``transport`` replaces the network (e.g. ``httpx.ASGITransport(app)``).
    Use as ``async with AsyncClient(url, api_key=...) as client:`` or call
    :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=check_url(base_url),
            headers=auth_headers(api_key, token),
            timeout=timeout,
            verify=tls_verification(base_url),
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            content=call.content,
            headers=call.headers,
        )
        if call.anonymous:
            without_credentials(request)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as error:
            raise unreachable(self._http.base_url, error) from error
        if response.is_error:
            raise error_from(response, call.invalid)
        return call.parse(response)

    async def health(self) -> Health:
        """``GET /healthz``."""
        return await self._send(Calls.health())

    # flows

    async def apply_flow(self, source: str | os.PathLike[str]) -> FlowRecordView:
        """Create or update a flow: ``source`` is YAML text, or a path to a YAML file.

        Returns the stored revision; an invalid flow raises :class:`FlowError`.
        """
        return await self._send(Calls.apply_flow(source))

    async def flows(self) -> list[FlowSummary]:
        """The latest revision of every flow of the caller's organization."""
        return await self._send(Calls.flows())

    async def flow(
        self, namespace: str, flow_id: str, *, revision: int | None = None
    ) -> FlowDetail:
        """One flow (its latest revision, or ``revision``) with its source."""
        return await self._send(Calls.flow(namespace, flow_id, revision))

    async def triggers(self, namespace: str, flow_id: str) -> list[TriggerView]:
        """A flow's triggers and their state."""
        return await self._send(Calls.triggers(namespace, flow_id))

    async def pause_trigger(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerView:
        """Pause a trigger: it fires nothing until resumed (operator)."""
        return await self._send(Calls.trigger_action(namespace, flow_id, trigger_id, "pause", {}))

    async def resume_trigger(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        *,
        catch_up: Literal["QUEUE", "DROP"] = "DROP",
    ) -> TriggerView:
        """Resume a trigger: ``QUEUE`` fires what it missed while paused, ``DROP`` not."""
        body = {"catchUp": catch_up}
        return await self._send(
            Calls.trigger_action(namespace, flow_id, trigger_id, "resume", body)
        )

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        await self._send(Calls.delete_flow(namespace, flow_id))

    async def validate_flow(
        self, source: str | os.PathLike[str], *, idempotency_key: str | None = None
    ) -> FlowValidation:
        """Check a flow without storing it; problems raise :class:`FlowError` naming each."""
        return await self._send(Calls.validate_flow(source, idempotency_key))

    # executions

    async def start(
        self,
        namespace: str,
        flow_id: str,
        *,
        inputs: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        revision: int | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionView:
        """Start an execution; inputs are validated by the server (422 names each field)."""
        return await self._send(
            Calls.start(namespace, flow_id, inputs, labels, revision, idempotency_key)
        )

    # ``Engine``'s name for it, so that both are a ``ControlSurface``.
    start_execution = start

    async def list_executions(
        self,
        *,
        state: str | Sequence[str] | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        parent: str | None = None,
        root: str | None = None,
    ) -> ExecutionPage:
        """One page of executions, newest first; pass ``next_cursor`` on for the next."""
        return await self._send(
            Calls.list_executions(state, namespace, flow_id, labels, limit, cursor, parent, root)
        )

    async def execution_page(
        self,
        *,
        states: Sequence[str] = (),
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> ExecutionPage:
        """:meth:`list_executions` with ``Engine``'s arguments (a ``ControlSurface`` method)."""
        return await self.list_executions(
            state=list(states) or None,
            namespace=namespace,
            flow_id=flow_id,
            labels=labels,
            limit=limit,
            cursor=cursor,
            parent=parent_id,
            root=root_id,
        )

    async def iter_executions(
        self,
        *,
        state: str | Sequence[str] | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[ExecutionSummary]:
        """Every matching execution, newest first, fetched a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.list_executions(
                state=state,
                namespace=namespace,
                flow_id=flow_id,
                labels=labels,
                limit=page_size,
                cursor=cursor,
            )
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def execution(self, execution_id: str) -> ExecutionView:
        """Task runs, outputs, open pause points and context of an execution."""
        return await self._send(Calls.execution(execution_id))

    async def state(self, execution_id: str) -> StateView:
        return await self._send(Calls.state(execution_id))

    async def audit(self, execution_id: str) -> list[CommandView]:
        """Every control request made to the execution, oldest first."""
        return await self._send(Calls.audit(execution_id))

    # control

    async def pause(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
        freeze_clock: bool | None = None,
    ) -> ControlResult:
        """Pause at the next checkpoint (409 :class:`Conflict` names a state that forbids it)."""
        return await self._send(
            Calls.control(
                execution_id, "pause", pause_body(reason, cascade, freeze_clock), idempotency_key
            )
        )

    async def resume(
        self,
        execution_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        pause_id: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult:
        """Resume an open pause point; invalid ``inputs`` raise :class:`InvalidInput`."""
        body = resume_body(inputs, pause_id, reason, cascade)
        return await self._send(Calls.control(execution_id, "resume", body, idempotency_key))

    async def validate_resume(
        self,
        execution_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ValidatedInputs:
        """Dry run of :meth:`resume`: the typed inputs, or :class:`InvalidInput`."""
        return await self._send(
            Calls.validate_resume(execution_id, inputs, pause_id, idempotency_key)
        )

    async def cancel(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult:
        """Cancel cooperatively: in-flight work is asked to stop, ``finally`` tasks run."""
        return await self._send(
            Calls.control(execution_id, "cancel", pause_body(reason, cascade), idempotency_key)
        )

    async def terminate(
        self,
        execution_id: str,
        reason: str,
        *,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> TerminateReply:
        """Stop at once (``reason``: 1-500 characters); nothing else runs."""
        return await self._send(Calls.terminate(execution_id, reason, idempotency_key, cascade))

    async def inject(
        self,
        execution_id: str,
        message: str,
        *,
        role: MessageRole = "user",
        idempotency_key: str | None = None,
    ) -> ControlResult:
        """Append a message to the execution's context."""
        body = {"message": message, "role": role}
        return await self._send(Calls.control(execution_id, "inject", body, idempotency_key))

    async def bulk(
        self,
        op: BulkOp,
        *,
        ids: Sequence[str] | None = None,
        state: str | Sequence[str] | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        reason: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        pause_id: str | None = None,
        dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> BulkReply:
        """Apply ``op`` to ``ids``, or to every execution the filters select.

        Each execution gets the status its single-execution route would answer;
        ``dry_run`` only lists what would be touched.
        """
        selection = BulkSelection(
            ids, state, namespace, flow_id, labels, reason, inputs, pause_id, dry_run
        )
        return await self._send(Calls.bulk(op, selection, idempotency_key))

    # approvals

    async def review(
        self,
        execution_id: str,
        decision: ReviewDecision,
        *,
        comment: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ControlResult:
        """Vote ``approve`` or ``deny`` on an approval task's open request, as the caller.

        The vote that completes the quorum, or a deny that denies, decides it.
        Name the request with ``pause_id`` when the execution has several open.
        Raises :class:`Conflict` (no open request, or already voted),
        :class:`Forbidden` (not an approver, or separation of duties) or
        :class:`InvalidInput` naming the field (``comment`` when one is required,
        ``inputs``, ``pause_id``).
        """
        return await self._send(
            Calls.review(execution_id, decision, comment, inputs, pause_id, idempotency_key)
        )

    async def approve(
        self,
        execution_id: str,
        *,
        comment: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ControlResult:
        """:meth:`review` with ``approve``."""
        return await self.review(
            execution_id,
            "approve",
            comment=comment,
            inputs=inputs,
            pause_id=pause_id,
            idempotency_key=idempotency_key,
        )

    async def deny(
        self,
        execution_id: str,
        *,
        comment: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ControlResult:
        """:meth:`review` with ``deny``."""
        return await self.review(
            execution_id,
            "deny",
            comment=comment,
            inputs=inputs,
            pause_id=pause_id,
            idempotency_key=idempotency_key,
        )

    async def approvals(
        self,
        *,
        mine: bool = False,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        older_than: str | None = None,
        limit: int = 100,
    ) -> ApprovalPage:
        """Open approval requests, oldest first, each saying what the caller may do with it.

        ``mine`` keeps those the caller may still vote on; ``older_than`` (an
        ISO-8601 duration such as ``PT1H``) those open at least that long;
        ``total`` counts every match, ``items`` holds up to ``limit`` of them.
        """
        return await self._send(
            Calls.approvals(mine, namespace, flow_id, labels, older_than, limit)
        )

    async def decision_link(
        self,
        execution_id: str,
        pause_id: str,
        approver: str,
        *,
        decision: LinkDecision = "review",
        groups: Sequence[str] = (),
        expires_in: str | None = None,
    ) -> MintedLink:
        """A signed link that votes on the open request ``pause_id`` as ``approver`` (admins).

        Whoever opens the link needs no API key: it shows the request and a form
        that votes ``decision`` (``review``: approve or deny). The vote counts for
        ``groups`` (default: the groups of ``approver``'s keys). It expires after
        ``expires_in`` (ISO-8601, e.g. ``PT2H``; default: the server's link
        lifetime), never after the request's deadline. Raises :class:`Conflict`
        if the request is not open, :class:`Forbidden` below the admin role.
        """
        return await self._send(
            Calls.decision_link(execution_id, pause_id, approver, decision, groups, expires_in)
        )

    # callback tokens

    async def callback(
        self, execution_id: str, task_id: str, *, expires_in: str | None = None
    ) -> MintedCallback:
        """A callback token completing the Pause task ``task_id``'s wait (operators).

        Hand its ``url`` to the system that finishes the work; it calls
        :meth:`complete_callback` (or POSTs to the URL) with no API key.
        ``expires_in``: ISO-8601 (default: the server's callback lifetime).
        Raises :class:`NotFound` if the execution has no Pause task ``task_id``.
        """
        return await self._send(Calls.callback(execution_id, task_id, expires_in))

    async def complete_callback(
        self, token_or_url: str, inputs: Mapping[str, Any] | None = None
    ) -> CallbackOutcome:
        """Complete the wait a callback token names with ``inputs`` (the task's ``onResume``).

        ``token_or_url`` is the token or its URL; no API key is sent. The outcome
        is ``applied`` when the task waits, ``kept`` when it does not wait yet
        (applied once it does); a second completion returns the first one's
        outcome (``replayed``). Raises :class:`InvalidInput` naming the field,
        :class:`Conflict` once the wait ended, :class:`Forbidden` for an altered
        token, :class:`Expired` for an expired one; ``ValueError`` for a URL that
        is not a callback's (only its token is read: the call goes to this
        client's server).
        """
        return await self._send(Calls.complete_callback(token_or_url, inputs))

    async def heartbeat(self, token_or_url: str) -> None:
        """The work behind a callback token goes on: its Pause task's ``heartbeatTimeout``
        starts again. No API key is sent."""
        await self._send(Calls.callback_heartbeat(token_or_url))

    # events

    async def events(self, execution_id: str, *, after: int = 0) -> list[EventView]:
        """Every event after sequence number ``after`` recorded so far."""
        events: list[EventView] = []
        while True:
            page = await self._send(Calls.events(execution_id, after))
            events += page.items
            if not page.items or page.next_after is None or page.next_after <= after:
                return events
            after = page.next_after

    async def follow(self, execution_id: str, *, after: int = 0) -> AsyncIterator[EventView]:
        """Every event after ``after``, live; ends after the terminal event.

        A dropped connection is resumed from the last event received, so no
        event is repeated or missed; :class:`ConnectionFailed` after repeated
        reconnects that bring nothing.
        """
        stream = EventStream(self._http.base_url, execution_id, after)
        while True:
            error: Exception | None = None
            try:
                async with self._http.stream(
                    "GET", stream.path, headers=stream.headers()
                ) as response:
                    if response.is_error:
                        await response.aread()
                        raise error_from(response)
                    stream.check(response)
                    async for line in response.aiter_lines():
                        event = stream.feed(line)
                        if event is not None:
                            yield event
                            if event.is_terminal:
                                return
            except httpx.TransportError as dropped:
                error = dropped
            # A stream that ends at once: nothing is left if the execution has ended.
            if (
                error is None
                and not stream.progressed
                and (await self.state(execution_id)).state in TERMINAL_STATES
            ):
                return
            await asyncio.sleep(stream.dropped(error))

    async def wait(
        self, execution_id: str, *, until: Until = None, timeout: float | None = None
    ) -> ExecutionView:
        """Wait until the execution is terminal, or until ``until`` holds; its view then.

        ``until`` is a state name, a collection of them, or a predicate on the
        :class:`ExecutionView`. Returns the final view if the execution ends
        first; raises ``TimeoutError`` after ``timeout`` seconds.
        """
        condition = condition_of(until)

        async def watch() -> ExecutionView:
            view = await self.execution(execution_id)
            if condition(view):
                return view
            async for event in self.follow(execution_id):
                if event.type.startswith("workflow."):
                    view = await self.execution(execution_id)
                    if condition(view):
                        return view
            return await self.execution(execution_id)

        return await asyncio.wait_for(watch(), timeout)

    # secrets

    async def put_secret(self, name: str, value: str) -> None:
        """Create or replace a secret (admin); no endpoint ever returns its value."""
        await self._send(Calls.put_secret(name, value))

    async def secrets(self) -> list[str]:
        """The names of the organization's secrets."""
        return await self._send(Calls.secrets())

    async def delete_secret(self, name: str) -> None:
        await self._send(Calls.delete_secret(name))
