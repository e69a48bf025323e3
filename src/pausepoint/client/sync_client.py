"""The blocking client (over ``httpx.Client``; no event loop)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
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


class Client:
    """A pausepoint server, over HTTP, for blocking code: :class:`AsyncClient`'s methods.

    Safe to share between threads (one ``httpx.Client`` connection pool).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=check_url(base_url),
            headers=auth_headers(api_key, token),
            timeout=timeout,
            verify=tls_verification(base_url),
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T]) -> T:
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
            response = self._http.send(request)
        except httpx.TransportError as error:
            raise unreachable(self._http.base_url, error) from error
        if response.is_error:
            raise error_from(response, call.invalid)
        return call.parse(response)

    def health(self) -> Health:
        return self._send(Calls.health())

    def apply_flow(self, source: str | os.PathLike[str]) -> FlowRecordView:
        """See :meth:`AsyncClient.apply_flow`."""
        return self._send(Calls.apply_flow(source))

    def flows(self) -> list[FlowSummary]:
        return self._send(Calls.flows())

    def flow(self, namespace: str, flow_id: str, *, revision: int | None = None) -> FlowDetail:
        return self._send(Calls.flow(namespace, flow_id, revision))

    def triggers(self, namespace: str, flow_id: str) -> list[TriggerView]:
        return self._send(Calls.triggers(namespace, flow_id))

    def pause_trigger(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerView:
        return self._send(Calls.trigger_action(namespace, flow_id, trigger_id, "pause", {}))

    def resume_trigger(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        *,
        catch_up: Literal["QUEUE", "DROP"] = "DROP",
    ) -> TriggerView:
        body = {"catchUp": catch_up}
        return self._send(Calls.trigger_action(namespace, flow_id, trigger_id, "resume", body))

    def delete_flow(self, namespace: str, flow_id: str) -> None:
        self._send(Calls.delete_flow(namespace, flow_id))

    def validate_flow(
        self, source: str | os.PathLike[str], *, idempotency_key: str | None = None
    ) -> FlowValidation:
        return self._send(Calls.validate_flow(source, idempotency_key))

    def start(
        self,
        namespace: str,
        flow_id: str,
        *,
        inputs: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        revision: int | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionView:
        return self._send(
            Calls.start(namespace, flow_id, inputs, labels, revision, idempotency_key)
        )

    # ``Engine``'s name for it, so that both are a ``ControlSurface``.
    start_execution = start

    def list_executions(
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
        return self._send(
            Calls.list_executions(state, namespace, flow_id, labels, limit, cursor, parent, root)
        )

    def execution_page(
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
        """:meth:`list_executions` with ``Engine``'s arguments, as on :class:`AsyncClient`."""
        return self.list_executions(
            state=list(states) or None,
            namespace=namespace,
            flow_id=flow_id,
            labels=labels,
            limit=limit,
            cursor=cursor,
            parent=parent_id,
            root=root_id,
        )

    def iter_executions(
        self,
        *,
        state: str | Sequence[str] | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
    ) -> Iterator[ExecutionSummary]:
        cursor: str | None = None
        while True:
            page = self.list_executions(
                state=state,
                namespace=namespace,
                flow_id=flow_id,
                labels=labels,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def execution(self, execution_id: str) -> ExecutionView:
        return self._send(Calls.execution(execution_id))

    def state(self, execution_id: str) -> StateView:
        return self._send(Calls.state(execution_id))

    def audit(self, execution_id: str) -> list[CommandView]:
        return self._send(Calls.audit(execution_id))

    def pause(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
        freeze_clock: bool | None = None,
    ) -> ControlResult:
        return self._send(
            Calls.control(
                execution_id, "pause", pause_body(reason, cascade, freeze_clock), idempotency_key
            )
        )

    def resume(
        self,
        execution_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        pause_id: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult:
        body = resume_body(inputs, pause_id, reason, cascade)
        return self._send(Calls.control(execution_id, "resume", body, idempotency_key))

    def validate_resume(
        self,
        execution_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ValidatedInputs:
        return self._send(Calls.validate_resume(execution_id, inputs, pause_id, idempotency_key))

    def cancel(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult:
        return self._send(
            Calls.control(execution_id, "cancel", pause_body(reason, cascade), idempotency_key)
        )

    def terminate(
        self,
        execution_id: str,
        reason: str,
        *,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> TerminateReply:
        return self._send(Calls.terminate(execution_id, reason, idempotency_key, cascade))

    def inject(
        self,
        execution_id: str,
        message: str,
        *,
        role: MessageRole = "user",
        idempotency_key: str | None = None,
    ) -> ControlResult:
        body = {"message": message, "role": role}
        return self._send(Calls.control(execution_id, "inject", body, idempotency_key))

    def bulk(
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
        return self._send(Calls.bulk(op, selection, idempotency_key))

    def review(
        self,
        execution_id: str,
        decision: ReviewDecision,
        *,
        comment: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ControlResult:
        """See :meth:`AsyncClient.review`."""
        return self._send(
            Calls.review(execution_id, decision, comment, inputs, pause_id, idempotency_key)
        )

    def approve(
        self,
        execution_id: str,
        *,
        comment: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ControlResult:
        return self.review(
            execution_id,
            "approve",
            comment=comment,
            inputs=inputs,
            pause_id=pause_id,
            idempotency_key=idempotency_key,
        )

    def deny(
        self,
        execution_id: str,
        *,
        comment: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ControlResult:
        return self.review(
            execution_id,
            "deny",
            comment=comment,
            inputs=inputs,
            pause_id=pause_id,
            idempotency_key=idempotency_key,
        )

    def approvals(
        self,
        *,
        mine: bool = False,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        older_than: str | None = None,
        limit: int = 100,
    ) -> ApprovalPage:
        """See :meth:`AsyncClient.approvals`."""
        return self._send(Calls.approvals(mine, namespace, flow_id, labels, older_than, limit))

    def decision_link(
        self,
        execution_id: str,
        pause_id: str,
        approver: str,
        *,
        decision: LinkDecision = "review",
        groups: Sequence[str] = (),
        expires_in: str | None = None,
    ) -> MintedLink:
        """See :meth:`AsyncClient.decision_link`."""
        return self._send(
            Calls.decision_link(execution_id, pause_id, approver, decision, groups, expires_in)
        )

    def callback(
        self, execution_id: str, task_id: str, *, expires_in: str | None = None
    ) -> MintedCallback:
        """See :meth:`AsyncClient.callback`."""
        return self._send(Calls.callback(execution_id, task_id, expires_in))

    def complete_callback(
        self, token_or_url: str, inputs: Mapping[str, Any] | None = None
    ) -> CallbackOutcome:
        """See :meth:`AsyncClient.complete_callback` (no API key is sent)."""
        return self._send(Calls.complete_callback(token_or_url, inputs))

    def heartbeat(self, token_or_url: str) -> None:
        """See :meth:`AsyncClient.heartbeat` (no API key is sent)."""
        self._send(Calls.callback_heartbeat(token_or_url))

    def events(self, execution_id: str, *, after: int = 0) -> list[EventView]:
        events: list[EventView] = []
        while True:
            page = self._send(Calls.events(execution_id, after))
            events += page.items
            if not page.items or page.next_after is None or page.next_after <= after:
                return events
            after = page.next_after

    def follow(self, execution_id: str, *, after: int = 0) -> Iterator[EventView]:
        """See :meth:`AsyncClient.follow`."""
        return self._follow(execution_id, after, deadline=None)

    def _follow(self, execution_id: str, after: int, deadline: float | None) -> Iterator[EventView]:
        stream = EventStream(self._http.base_url, execution_id, after)

        def remaining() -> float:
            if deadline is None:
                return self._timeout
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"execution {execution_id}: gave up waiting")
            return min(left, self._timeout)

        while True:
            error: Exception | None = None
            try:
                with self._http.stream(
                    "GET", stream.path, headers=stream.headers(), timeout=remaining()
                ) as response:
                    if response.is_error:
                        response.read()
                        raise error_from(response)
                    stream.check(response)
                    for line in response.iter_lines():
                        event = stream.feed(line)
                        if event is not None:
                            yield event
                            if event.is_terminal:
                                return
                        remaining()
            except httpx.TransportError as dropped:
                error = dropped
            remaining()
            if (
                error is None
                and not stream.progressed
                and self.state(execution_id).state in TERMINAL_STATES
            ):
                return
            time.sleep(min(stream.dropped(error), remaining()))

    def wait(
        self, execution_id: str, *, until: Until = None, timeout: float | None = None
    ) -> ExecutionView:
        """See :meth:`AsyncClient.wait`."""
        condition = condition_of(until)
        deadline = None if timeout is None else time.monotonic() + timeout
        view = self.execution(execution_id)
        if condition(view):
            return view
        for event in self._follow(execution_id, 0, deadline):
            if event.type.startswith("workflow."):
                view = self.execution(execution_id)
                if condition(view):
                    return view
        return self.execution(execution_id)

    def put_secret(self, name: str, value: str) -> None:
        self._send(Calls.put_secret(name, value))

    def secrets(self) -> list[str]:
        return self._send(Calls.secrets())

    def delete_secret(self, name: str) -> None:
        self._send(Calls.delete_secret(name))
