"""One frozen dataclass per operation a caller can ask of the control plane.

Each says which role it needs, whether an ``Idempotency-Key`` may repeat it,
and what it does once the chain (``service/plane.py``) lets it through: its
``run`` is the implementation at the end of the chain, called with the engine
scoped to the caller's organization. The control commands (pause, resume, …)
are in ``service/requests.py`` and follow the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pausepoint.engine.state import RetryOrigin
from pausepoint.errors import FieldError, InvalidInput
from pausepoint.models import (
    ApprovalPage,
    CommandView,
    EventView,
    ExecutionView,
    StateView,
    TriggerView,
)
from pausepoint.service.approvals import Reviewer
from pausepoint.service.auth import Role
from pausepoint.service.callbacks import MintedCallback
from pausepoint.service.flows import StoredFlow
from pausepoint.service.links import Action, MintedLink
from pausepoint.store.records import FlowRecord
from pausepoint.wire import BulkReply, ExecutionPage, FlowSummary

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine

R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class Operation(Generic[R]):
    """What every operation declares; subclasses set the class variables and ``run``."""

    required_role: ClassVar[Role] = "viewer"
    action: ClassVar[str] = "reading executions"  # for "… needs the operator role"
    # A repeated Idempotency-Key returns the first result instead of running it again;
    # ``result_type`` is how that result is stored and read back.
    idempotent: ClassVar[bool] = False
    result_type: ClassVar[Any] = None

    @property
    def name(self) -> str:
        return type(self).__name__.removesuffix("Request")

    @property
    def target(self) -> str | None:
        """What the operation acts on, for the audit log."""
        return None

    async def run(self, engine: Engine) -> R:
        raise NotImplementedError


# -- executions --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubflowParent:
    """The task run whose subflow task starts an execution, and the root of its tree."""

    execution_id: str
    task_run_id: str
    root_id: str
    waits: bool  # the task waits for the child's end
    hold: str | None = None  # the parent's manual pause open when the task started it
    # The parent's labels the child inherits (Kestra's inheritLabels): its own flow's
    # labels and the task's labels win over them.
    inherited_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class StartRequest(Operation[ExecutionView]):
    namespace: str
    flow_id: str
    inputs: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    revision: int | None = None
    # Given by the chain: the execution's id derives from it (see Engine.start_execution).
    idempotency_key: str | None = None
    # Given by the chain: the caller's W3C trace context, the execution's trace.
    traceparent: str | None = None
    # Set by triggers only: what fired it, read by the flow as ``trigger.*``.
    trigger: dict[str, Any] | None = None
    # Set by subflow tasks only: the execution is a child of this task run.
    parent: SubflowParent | None = None
    # Given by the chain: who starts it (separation of duties in its approvals).
    actor: str | None = None
    # Set by retries only (CREATE_NEW_EXECUTION): the execution retries the one named.
    origin: RetryOrigin | None = None

    required_role = "operator"
    action = "starting an execution"
    idempotent = True
    result_type = ExecutionView

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.flow_id}"

    async def run(self, engine: Engine) -> ExecutionView:
        return await engine.start_execution(
            self.namespace,
            self.flow_id,
            inputs=self.inputs,
            labels=self.labels,
            revision=self.revision,
            idempotency_key=self.idempotency_key,
            traceparent=self.traceparent,
            trigger=self.trigger,
            parent=self.parent,
            started_by=self.actor,
            origin=self.origin,
        )


@dataclass(frozen=True, kw_only=True)
class ListExecutionsRequest(Operation[ExecutionPage]):
    """A page of executions, newest first; ``cursor`` comes from the previous page."""

    states: tuple[str, ...] = ()
    namespace: str | None = None
    flow_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    limit: int = 50
    cursor: str | None = None
    parent_id: str | None = None  # the children of this execution
    root_id: str | None = None  # every descendant of this execution

    async def run(self, engine: Engine) -> ExecutionPage:
        return await engine.execution_page(
            states=self.states,
            namespace=self.namespace,
            flow_id=self.flow_id,
            labels=self.labels,
            limit=self.limit,
            cursor=self.cursor,
            parent_id=self.parent_id,
            root_id=self.root_id,
        )


@dataclass(frozen=True, kw_only=True)
class ApprovalsRequest(Operation[ApprovalPage]):
    """Open approval requests across executions (the inbox), oldest first."""

    user: str
    groups: tuple[str, ...] = ()
    role: str = "viewer"
    assigned_to_me: bool = False
    namespace: str | None = None
    flow_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    older_than: str | None = None
    limit: int = 100

    async def run(self, engine: Engine) -> ApprovalPage:
        return await engine.approvals(
            Reviewer(self.user, self.groups, self.role),
            assigned_to_me=self.assigned_to_me,
            namespace=self.namespace,
            flow_id=self.flow_id,
            labels=self.labels,
            older_than=self.older_than,
            limit=self.limit,
        )


@dataclass(frozen=True, kw_only=True)
class MintLinkRequest(Operation[MintedLink]):
    """A signed link that votes on an open approval request as one approver (admins only:
    whoever holds the link acts as that approver)."""

    execution_id: str
    pause_id: str
    approver: str
    decision: Action  # approve, deny, or review (the form with both)
    groups: tuple[str, ...] = ()
    expires_in: float | None = None

    required_role = "admin"
    action = "making decision links"
    result_type = MintedLink

    @property
    def target(self) -> str:
        return f"{self.execution_id}/{self.pause_id}"

    async def run(self, engine: Engine) -> MintedLink:
        return await engine.mint_decision_link(
            self.execution_id,
            self.pause_id,
            self.approver,
            self.decision,
            groups=self.groups,
            expires_in=self.expires_in,
        )


@dataclass(frozen=True, kw_only=True)
class MintCallbackRequest(Operation[MintedCallback]):
    """A callback token for one Pause task of an execution (operators: it resumes)."""

    execution_id: str
    task_id: str
    expires_in: float | None = None

    required_role = "operator"
    action = "making callback tokens"
    result_type = MintedCallback

    @property
    def target(self) -> str:
        return f"{self.execution_id}/{self.task_id}"

    async def run(self, engine: Engine) -> MintedCallback:
        return await engine.mint_callback(
            self.execution_id, self.task_id, expires_in=self.expires_in
        )


@dataclass(frozen=True, kw_only=True)
class GetExecutionRequest(Operation[ExecutionView]):
    execution_id: str

    async def run(self, engine: Engine) -> ExecutionView:
        return await engine.execution(self.execution_id)


@dataclass(frozen=True, kw_only=True)
class GetStateRequest(Operation[StateView]):
    execution_id: str

    async def run(self, engine: Engine) -> StateView:
        return await engine.state(self.execution_id)


@dataclass(frozen=True, kw_only=True)
class AuditRequest(Operation[list[CommandView]]):
    execution_id: str

    async def run(self, engine: Engine) -> list[CommandView]:
        return await engine.commands(self.execution_id)


@dataclass(frozen=True, kw_only=True)
class EventsRequest(Operation[list[EventView]]):
    execution_id: str
    after: int = 0
    limit: int = 1000

    async def run(self, engine: Engine) -> list[EventView]:
        return await engine.events(self.execution_id, after=self.after, limit=self.limit)


@dataclass(frozen=True, kw_only=True)
class OpenStreamRequest(Operation["Engine"]):
    """Before a live stream starts: the engine acting for the caller's organization, once
    ``execution_id`` (when given) is known to be theirs (``NotFound`` otherwise)."""

    execution_id: str | None = None

    async def run(self, engine: Engine) -> Engine:
        if self.execution_id is not None:
            await engine.state(self.execution_id)
        return engine


@dataclass(frozen=True, kw_only=True)
class ValidateResumeRequest(Operation[dict[str, Any]]):
    execution_id: str
    inputs: dict[str, Any] = field(default_factory=dict)
    pause_id: str | None = None

    required_role = "operator"
    action = "resuming an execution"

    async def run(self, engine: Engine) -> dict[str, Any]:
        return await engine.validate_resume(self.execution_id, self.inputs, self.pause_id)


@dataclass(frozen=True, kw_only=True)
class BulkRequest(Operation[BulkReply]):
    """One control operation on many executions: by ids, or by the list's filters."""

    op: str  # pause | resume | cancel | terminate
    ids: tuple[str, ...] | None = None
    states: tuple[str, ...] = ()
    namespace: str | None = None
    flow_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    by_filter: bool = False  # the executions the filter fields match, not ``ids``
    reason: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    pause_id: str | None = None
    dry_run: bool = False
    # Check every execution first and apply nothing unless each one would be accepted
    # (Kestra's bulk); a refusal answers the check, as a dry run.
    all_or_nothing: bool = False
    # Set by the chain: each command records who sent it and in which request.
    actor: str = "anonymous"
    request_id: str | None = None
    traceparent: str | None = None
    # Given by the chain: each execution's command is keyed by it, so that a retry of a
    # request whose answer was lost replays the commands instead of sending them again.
    idempotency_key: str | None = None

    required_role = "operator"
    action = "controlling executions"
    idempotent = True
    result_type = BulkReply

    def validate(self) -> None:
        """Refuse a request the operation cannot mean (422 naming each field)."""
        errors = []
        if (self.ids is None) == (not self.by_filter):
            errors.append(FieldError(("body",), "give exactly one of 'ids' and 'filter'"))
        if self.op == "terminate" and not (self.reason and self.reason.strip()):
            errors.append(FieldError(("body", "reason"), "terminate needs a reason", "missing"))
        if self.op != "resume":
            if self.inputs:
                errors.append(FieldError(("body", "inputs"), "only resume takes inputs", "extra"))
            if self.pause_id is not None:
                errors.append(
                    FieldError(("body", "pause_id"), "only resume takes a pause_id", "extra")
                )
        if errors:
            raise InvalidInput("; ".join(str(e) for e in errors), errors)

    @property
    def target(self) -> str:
        if self.ids is None:
            return f"{self.op} by filter"
        return f"{self.op} of {len(self.ids)} executions"

    async def run(self, engine: Engine) -> BulkReply:
        return await engine.bulk(self)


# -- flows ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PutFlowRequest(Operation[StoredFlow]):
    """Store a flow (YAML text) as ``namespace``/``flow_id``, which the flow must declare."""

    namespace: str
    flow_id: str
    source: str = field(repr=False)
    source_name: str = "<body>"

    required_role = "admin"
    action = "managing flows"

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.flow_id}"

    async def run(self, engine: Engine) -> StoredFlow:
        return await engine.put_flow_at(
            self.namespace, self.flow_id, self.source, source_name=self.source_name
        )


@dataclass(frozen=True, kw_only=True)
class GetFlowRequest(Operation[FlowRecord]):
    namespace: str
    flow_id: str
    revision: int | None = None

    action = "reading flows"

    async def run(self, engine: Engine) -> FlowRecord:
        return await engine.flow_record(self.namespace, self.flow_id, self.revision)


@dataclass(frozen=True, kw_only=True)
class ListFlowsRequest(Operation[list[FlowSummary]]):
    action = "reading flows"

    async def run(self, engine: Engine) -> list[FlowSummary]:
        return await engine.flows()


@dataclass(frozen=True, kw_only=True)
class DeleteFlowRequest(Operation[None]):
    namespace: str
    flow_id: str

    required_role = "admin"
    action = "managing flows"

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.flow_id}"

    async def run(self, engine: Engine) -> None:
        await engine.delete_flow(self.namespace, self.flow_id)


# -- triggers ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ListTriggersRequest(Operation[list[TriggerView]]):
    namespace: str
    flow_id: str

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.flow_id}"

    async def run(self, engine: Engine) -> list[TriggerView]:
        return await engine.triggers(self.namespace, self.flow_id)


@dataclass(frozen=True, kw_only=True)
class PauseTriggerRequest(Operation[TriggerView]):
    """Kestra's trigger toggle, off: the trigger fires nothing until resumed."""

    namespace: str
    flow_id: str
    trigger_id: str

    required_role = "operator"
    action = "pausing a trigger"

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.flow_id}.{self.trigger_id}"

    async def run(self, engine: Engine) -> TriggerView:
        return await engine.pause_trigger(self.namespace, self.flow_id, self.trigger_id)


@dataclass(frozen=True, kw_only=True)
class ResumeTriggerRequest(Operation[TriggerView]):
    """Kestra's trigger toggle, on: ``QUEUE`` fires the ticks missed meanwhile, ``DROP`` not."""

    namespace: str
    flow_id: str
    trigger_id: str
    catch_up: Literal["QUEUE", "DROP"] = "DROP"

    required_role = "operator"
    action = "resuming a trigger"

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.flow_id}.{self.trigger_id}"

    async def run(self, engine: Engine) -> TriggerView:
        return await engine.resume_trigger(
            self.namespace, self.flow_id, self.trigger_id, catch_up=self.catch_up
        )


# -- internal storage -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PutNamespaceFileRequest(Operation[str]):
    """Store a namespace's own file; answers its ``kestra:///`` URI."""

    namespace: str
    path: str | None  # None: the caller did not say (the engine says it is required)
    content: bytes | None = field(repr=False)  # None: a form without its fileContent part

    required_role = "operator"
    action = "storing files"

    @property
    def target(self) -> str:
        return f"{self.namespace}:{self.path}"

    async def run(self, engine: Engine) -> str:
        return await engine.put_namespace_file(self.namespace, self.path, self.content)


@dataclass(frozen=True, kw_only=True)
class UploadInputRequest(Operation[str]):
    """Store a file sent as a FILE input with a start; answers its URI."""

    namespace: str
    flow_id: str
    input_id: str
    file_name: str
    content: bytes = field(repr=False)
    start_key: str | None = None  # the start's Idempotency-Key: a retry stores it once

    required_role = "operator"
    action = "starting an execution"

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.flow_id}:{self.input_id}"

    async def run(self, engine: Engine) -> str:
        return await engine.put_upload(
            self.namespace,
            self.flow_id,
            self.input_id,
            self.file_name,
            self.content,
            idempotency_key=self.start_key,
        )


@dataclass(frozen=True, kw_only=True)
class ReadFileRequest(Operation[bytes]):
    uri: str

    action = "reading files"

    async def run(self, engine: Engine) -> bytes:
        return await engine.read_file(self.uri)


# -- secrets ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PutSecretRequest(Operation[None]):
    secret_name: str
    value: str = field(repr=False)

    required_role = "admin"
    action = "managing secrets"

    @property
    def target(self) -> str:
        return self.secret_name

    async def run(self, engine: Engine) -> None:
        await engine.put_secret(self.secret_name, self.value)


@dataclass(frozen=True, kw_only=True)
class ListSecretsRequest(Operation[list[str]]):
    required_role = "admin"
    action = "managing secrets"

    async def run(self, engine: Engine) -> list[str]:
        return await engine.secret_names()


@dataclass(frozen=True, kw_only=True)
class DeleteSecretRequest(Operation[None]):
    secret_name: str

    required_role = "admin"
    action = "managing secrets"

    @property
    def target(self) -> str:
        return self.secret_name

    async def run(self, engine: Engine) -> None:
        await engine.delete_secret(self.secret_name)
