"""Control commands: admit, record durably, have applied, and the audit trail."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from pausepoint.engine.control import OpenPause, admit, on_resume_specs, project, view_of
from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.interpreter import iso
from pausepoint.engine.model import Command, CommandKind, ExecutionStatus
from pausepoint.engine.state import redact_secret_inputs
from pausepoint.errors import Conflict, FieldError, InvalidInput, PausepointError
from pausepoint.flow.inputs import InputSpec
from pausepoint.models import (
    CommandView,
    ControlResult,
)
from pausepoint.runtime.actor import command_event
from pausepoint.service.core import iso_or_none, new_id
from pausepoint.service.inbox import InboxLayer
from pausepoint.service.operations import BulkRequest
from pausepoint.service.requests import (
    CancelRequest,
    ControlRequest,
    DecideRequest,
    InjectRequest,
    PauseRequest,
    ResumeRequest,
    TerminateRequest,
    VoteRequest,
)
from pausepoint.service.subflows import steer_children
from pausepoint.service.views import masker_for
from pausepoint.store.records import (
    CommandRecord,
    ExecutionRecord,
)
from pausepoint.wire import BulkItem, BulkReply

# Commands whose effect reaches the children a parent waits for (service/subflows.py).
_CASCADING = frozenset({"pause", "resume", "cancel", "terminate"})
BULK_MAX_MATCHED = 1000
BULK_CONCURRENCY = 16
_BULK_REQUESTS: dict[str, type[ControlRequest]] = {
    "pause": PauseRequest,
    "resume": ResumeRequest,
    "cancel": CancelRequest,
    "terminate": TerminateRequest,
}


def _admitted(
    request: ControlRequest,
    command_id: str,
    now: float,
    execution: ExecutionRecord,
    pending: list[CommandRecord],
    index: FlowIndex,
) -> Command:
    """The command ``request`` becomes, admitted against the execution as its pending
    commands will leave it; raises ``Conflict`` or ``InvalidInput`` as the call would."""
    view = view_of(execution.state)
    for earlier in pending:
        view = project(view, command_event(earlier), index)
    if (
        isinstance(request, PauseRequest)
        and request.refuse_when_paused
        and view.status in (ExecutionStatus.PAUSING, ExecutionStatus.PAUSED)
    ):
        raise Conflict(f"execution {request.execution_id} is already paused")
    return admit(
        view,
        Command(
            command_id,
            CommandKind(request.kind),
            now,
            request.actor,
            request.reason,
            request.payload(),
            request.traceparent,
        ),
        index,
    )


def decision_command(
    request: DecideRequest, pause: OpenPause, specs: list[InputSpec]
) -> ControlRequest:
    """The command a yes or no on ``pause`` becomes (see ``DecideRequest``)."""
    declared = {spec.id: spec.kind for spec in specs}
    common: dict[str, Any] = {
        "execution_id": request.execution_id,
        "actor": request.actor,
        "idempotency_key": request.idempotency_key,
        "request_id": request.request_id,
        "traceparent": request.traceparent,
        "reason": request.reason,
        "wait": request.wait,
    }
    if pause.kind == "decision":
        return VoteRequest(
            decision="approve" if request.approved else "deny",
            pause_id=pause.id,
            comment=request.reason,
            **common,
        )
    inputs: dict[str, Any] = {}
    if pause.kind == "approval":
        inputs["decision"] = "approve" if request.approved else "reject"
    elif declared.get("approved") == "BOOLEAN":
        inputs["approved"] = request.approved
    elif not request.approved:
        return CancelRequest(
            **{**common, "reason": request.reason or f"pause point {pause.id} was denied"}
        )
    note = next((name for name in ("reason", "feedback") if declared.get(name) == "STRING"), None)
    if request.reason and note:
        inputs[note] = request.reason
    return ResumeRequest(inputs=inputs, pause_id=pause.id, **common)


def _what(command: CommandRecord) -> str:
    """What a command is called in its reply: votes, callbacks and heartbeats are resumes
    underneath, but their senders did not ask to resume."""
    payload = command.payload or {}
    for key, name in (("vote", "vote"), ("callback", "callback"), ("heartbeat", "heartbeat")):
        if key in payload:
            return name
    return command.kind


class ControlLayer(InboxLayer):
    async def control(self, request: ControlRequest) -> ControlResult:
        """Accept a control command: validate, record durably, then have it applied.

        Raises ``NotFound`` (404), ``Conflict`` (409: not legal in the current
        state) or ``InvalidInput`` (422: bad payload, bad resume inputs).
        """
        request.validate()
        index = await self._admission_index(request.execution_id)
        now = self.clock()
        command_id = new_id("cmd_")

        def decide(execution: ExecutionRecord, pending: list[CommandRecord]) -> dict[str, Any]:
            command = _admitted(request, command_id, now, execution, pending, index)
            return {
                "id": command.id,
                "kind": command.kind,
                "payload": command.payload,
                "actor": request.actor,
                "reason": request.reason,
                "request_id": request.request_id,
                "traceparent": request.traceparent,
            }

        command, replayed, commands_version = await self.store.accept_command(
            request.execution_id, request.idempotency_key, decide, now, org_id=self.org_id
        )
        if replayed and command.kind != request.kind:
            raise Conflict(
                f"idempotency key {request.idempotency_key!r} was already used for a "
                f"{command.kind} command on execution {request.execution_id}"
            )
        if not replayed:
            wait = self.settings.command_wait_timeout if request.wait else 0.0
            command = await self.runtime.deliver(command, commands_version, wait=wait)
            # A child's end or a concurrency slot changes nothing for the subflows.
            answers = any(key in command.payload for key in ("child", "child_paused", "release"))
            if command.kind in _CASCADING and not answers:
                self._in_background(steer_children(self, request.execution_id))  # type: ignore[arg-type]
        return await self._control_result(command, replayed)

    async def decide(self, request: DecideRequest) -> ControlResult:
        """Approve or deny one open pause point: the resume or cancel it becomes, accepted
        as ``control`` accepts it. ``Conflict`` if the pause point is not open."""
        request.validate()
        record = await self._record(request.execution_id)
        view = view_of(record.state)
        pause = view.pauses.get(request.pause_id)
        if pause is None:
            raise Conflict(
                f"cannot decide on execution {request.execution_id}: pause point "
                f"{request.pause_id!r} is not open (it is {record.status}; open pause points: "
                f"{', '.join(view.pauses) or 'none'})"
            )
        specs = on_resume_specs((await self._env_for(record)).index, pause)
        return await self.control(decision_command(request, pause, specs))

    async def _admission_index(self, execution_id: str) -> FlowIndex:
        """The flow an execution runs, for admitting its commands (cached: it never changes).

        The organization is checked again inside the accepting transaction.
        """
        known = self._shared.execution_flows.get(execution_id)
        if known is not None and known[0] == self.org_id:
            index = self._flows.get(known)
            if index is not None:
                return index
        record = await self._record(execution_id)
        index = (await self._env_for(record)).index
        self._remember_flow(
            execution_id, (record.org_id, record.namespace, record.flow_id, record.flow_revision)
        )
        return index

    async def _control_result(self, command: CommandRecord, replayed: bool) -> ControlResult:
        applied = None if command.status == "pending" else command.status == "applied"
        if command.state_after is not None:
            state = command.state_after
        elif applied is None and command.state_before is not None:
            state = command.state_before  # read in the transaction that accepted it
        else:
            state = (await self._record(command.execution_id)).status
        what = _what(command)
        if applied is None:
            message = f"{what} accepted; it will be applied at the next checkpoint"
        elif applied:
            message = f"{what} applied"
        else:
            message = f"{what} accepted but not applied: {command.message}"
        result = ControlResult(
            execution_id=command.execution_id,
            state=state,
            message=message,
            command_id=command.id,
            applied=applied,
            replayed=replayed,
            pause_id=command.payload.get("pause_id")
            or (command.id if command.kind == "pause" else None),
        )
        if command.kind == "terminate" and applied:
            result.terminated_at = iso_or_none(command.applied_at)
        return result

    async def pause(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
        freeze_clock: bool | None = None,
    ) -> ControlResult:
        return await self.control(
            PauseRequest(
                execution_id=execution_id,
                reason=reason,
                actor=actor or self.default_actor,
                idempotency_key=idempotency_key,
                cascade=cascade,
                freeze_clock=freeze_clock,
            )
        )

    async def resume(
        self,
        execution_id: str,
        *,
        inputs: dict[str, Any] | None = None,
        pause_id: str | None = None,
        actor: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult:
        return await self.control(
            ResumeRequest(
                execution_id=execution_id,
                inputs=inputs or {},
                pause_id=pause_id,
                actor=actor or self.default_actor,
                idempotency_key=idempotency_key,
                cascade=cascade,
            )
        )

    async def vote(
        self,
        execution_id: str,
        decision: str,
        *,
        pause_id: str | None = None,
        comment: str | None = None,
        inputs: dict[str, Any] | None = None,
        actor: str | None = None,
        groups: tuple[str, ...] = (),
        role: str = "admin",
        idempotency_key: str | None = None,
    ) -> ControlResult:
        """Vote ``approve`` or ``deny`` on an approval task's open request, as ``actor``
        (a member of ``groups``, with ``role``). The vote that completes the quorum,
        or a deny that denies, decides it."""
        return await self.control(
            VoteRequest(
                execution_id=execution_id,
                decision=decision,
                pause_id=pause_id,
                comment=comment,
                inputs=inputs or {},
                actor=actor or self.default_actor,
                groups=groups,
                role=role,
                idempotency_key=idempotency_key,
            )
        )

    async def cancel(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult:
        return await self.control(
            CancelRequest(
                execution_id=execution_id,
                reason=reason,
                actor=actor or self.default_actor,
                idempotency_key=idempotency_key,
                cascade=cascade,
            )
        )

    async def terminate(
        self,
        execution_id: str,
        *,
        reason: str,
        actor: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult:
        return await self.control(
            TerminateRequest(
                execution_id=execution_id,
                reason=reason,
                actor=actor or self.default_actor,
                idempotency_key=idempotency_key,
                cascade=cascade,
            )
        )

    async def inject(
        self,
        execution_id: str,
        message: str,
        *,
        role: str = "user",
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> ControlResult:
        return await self.control(
            InjectRequest(
                execution_id=execution_id,
                message=message,
                role=role,  # type: ignore[arg-type]  # validated by the request
                actor=actor or self.default_actor,
                idempotency_key=idempotency_key,
            )
        )

    async def validate_resume(
        self, execution_id: str, inputs: dict[str, Any], pause_id: str | None = None
    ) -> dict[str, Any]:
        """Dry run of resume: the coerced inputs (SECRET-typed ones shown as ``******``),
        or ``InvalidInput`` naming each field."""
        record = await self._record(execution_id)
        env = await self._env_for(record)
        view = view_of(record.state)
        command = admit(
            view,
            Command(
                "dry-run", "resume", self.clock(), payload={"inputs": inputs, "pause_id": pause_id}
            ),
            env.index,
        )
        values: dict[str, Any] = command.payload["inputs"]
        specs = on_resume_specs(env.index, view.pauses[command.payload["pause_id"]])
        return redact_secret_inputs(specs, values)

    async def commands(self, execution_id: str) -> list[CommandView]:
        """Every control command ever accepted for the execution (the audit trail).

        The values of SECRET-typed resume inputs show as ``******``.
        """
        record = await self._record(execution_id)
        commands = await self.store.list_commands(execution_id)
        env = await self._env_for(record)
        mask = masker_for(record.state, env)
        # A resume names its pause point; its task (whose inputs say what is SECRET)
        # is found through the run that opened it.
        pause_specs: dict[str, Any] = {}
        if any(c.kind == "resume" and c.payload.get("inputs") for c in commands):
            for run in await self.store.load_task_runs(execution_id):
                if run.get("type") == "pause" and run.get("pause_id"):
                    task = env.index.task(run["path"])
                    pause_specs[run["pause_id"]] = getattr(task, "on_resume", ())
                elif run.get("type") == "approval":
                    task = env.index.task(run["path"])
                    pause_specs[f"p-{run['id']}"] = getattr(task, "inputs", ())

        def shown(payload: dict[str, Any]) -> dict[str, Any]:
            inputs = payload.get("inputs")
            if isinstance(inputs, dict) and inputs:
                specs = pause_specs.get(payload.get("pause_id") or "", ())
                payload = {**payload, "inputs": redact_secret_inputs(specs, inputs)}
            masked: dict[str, Any] = mask(payload)
            return masked

        return [
            CommandView(
                id=c.id,
                seq=c.seq,
                kind=c.kind,
                actor=c.actor,
                reason=c.reason,
                payload=shown(c.payload),
                idempotency_key=c.idempotency_key,
                request_id=c.request_id,
                traceparent=c.traceparent,
                status=c.status,
                message=c.message,
                state_before=c.state_before,
                state_after=c.state_after,
                created_at=iso(c.created_at),
                applied_at=iso_or_none(c.applied_at),
            )
            for c in commands
        ]

    # -- many executions -----------------------------------------------------------------

    async def admission(self, request: ControlRequest) -> str:
        """Dry run of ``control``: the execution's state if the command would be accepted
        now; raises exactly what ``control`` would (404, 409, 422). Nothing is recorded."""
        request.validate()
        index = await self._admission_index(request.execution_id)
        record = await self._record(request.execution_id)
        pending, _ = await self.store.pending_commands(request.execution_id)
        _admitted(request, "dry-run", self.clock(), record, pending, index)
        return record.status

    async def bulk(self, request: BulkRequest) -> BulkReply:
        """One control operation on many executions, each with the status its own call
        would have answered; one execution's error never fails the others (unless
        ``all_or_nothing``: then any refusal answers the check and nothing is done)."""
        request_type = _BULK_REQUESTS.get(request.op)
        if request_type is None:
            raise InvalidInput(
                f"unknown bulk operation {request.op!r}",
                [FieldError(("path", "op"), f"one of {', '.join(_BULK_REQUESTS)}", "enum")],
            )
        request.validate()
        if request.ids is not None:
            ids = list(dict.fromkeys(request.ids))
        else:
            records = await self.list_executions(
                states=request.states,
                namespace=request.namespace,
                flow_id=request.flow_id,
                labels=request.labels,
                limit=BULK_MAX_MATCHED,
            )
            ids = [record.id for record in records]
        if request.all_or_nothing and not request.dry_run:
            check = replace(
                request, ids=tuple(ids), by_filter=False, dry_run=True, all_or_nothing=False
            )
            checked = await self.bulk(check)
            if any(item.status >= 300 for item in checked.results):
                return checked
        extra: dict[str, Any] = {}
        if request_type is ResumeRequest:
            extra = {"inputs": request.inputs, "pause_id": request.pause_id}
        gate = asyncio.Semaphore(BULK_CONCURRENCY)
        accepted_status = 200 if request.op == "terminate" else 202

        async def one(execution_id: str) -> BulkItem:
            command = request_type(
                execution_id=execution_id,
                reason=request.reason,
                actor=request.actor,
                request_id=request.request_id,
                traceparent=request.traceparent,
                idempotency_key=request.idempotency_key and f"bulk:{request.idempotency_key}",
                **extra,
            )
            async with gate:
                try:
                    if request.dry_run:
                        state = await self.admission(command)
                        message = f"would {request.op} (dry run)"
                        return BulkItem(
                            execution_id=execution_id, status=200, state=state, message=message
                        )
                    result = await self.control(command)
                except PausepointError as error:
                    return BulkItem(
                        execution_id=execution_id,
                        status=error.http_status,
                        state=await self._state_or_none(execution_id),
                        message=error.message,
                    )
            return BulkItem(
                execution_id=execution_id,
                status=accepted_status,
                state=result.state,
                message=result.message,
                terminated_at=result.terminated_at,
            )

        results = await asyncio.gather(*(one(execution_id) for execution_id in ids))
        return BulkReply(dry_run=request.dry_run, results=list(results))

    async def _state_or_none(self, execution_id: str) -> str | None:
        try:
            return (await self._record(execution_id)).status
        except PausepointError:
            return None
