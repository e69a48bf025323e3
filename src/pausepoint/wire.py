"""The HTTP API's request and response bodies: the wire format shared by server and clients.

A leaf module (pydantic and the public models only): the HTTP clients import it
without importing the server."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from pausepoint.models import EventView, MessageRole, PublicModel


class _Body(BaseModel):
    # Request bodies are built at import, unlike the replies: FastAPI reads them as
    # `Body()` parameters, which a deferred model does not support (and clients
    # never parse them).
    model_config = ConfigDict(extra="forbid")


class StartExecutionBody(_Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "namespace": "company.team",
                    "flow_id": "vacation_approval_process",
                    "labels": {"team": "hr"},
                }
            ]
        },
    )

    namespace: str = Field(min_length=1, max_length=255)
    flow_id: str = Field(min_length=1, max_length=255)
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    revision: int | None = Field(default=None, ge=1, le=2**31 - 1)


class _Cascading(_Body):
    """A command that may reach the subflow executions the execution waits for."""

    cascade: bool | None = Field(
        default=None,
        description="Whether this reaches the subflow executions it waits for "
        "(default: the flow's cascade policy, itself on by default).",
    )


class PauseBody(_Cascading):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"reason": "review the draft", "freeze_clock": True}]},
    )

    reason: str | None = Field(default=None, max_length=500)
    freeze_clock: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("freeze_clock", "freezeClock"),
        description="Stop the execution's deadlines while this pause holds it "
        "(default: the flow's clock policy, RUN).",
    )


class ResumeBody(_Cascading):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"inputs": {"approved": True, "reason": "looks good"}, "pause_id": "p-t2"}]
        },
    )

    inputs: dict[str, Any] = Field(default_factory=dict)
    pause_id: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class ReviewBody(BaseModel):
    """A vote on an approval task's open request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"decision": "approve", "comment": "looks good", "inputs": {}}]
        },
    )

    decision: str = Field(
        description="approve or deny (Kestra's APPROVED or DENIED)", min_length=1, max_length=20
    )
    comment: str | None = Field(default=None, max_length=5000)
    inputs: dict[str, Any] = Field(default_factory=dict)
    pause_id: str | None = Field(
        default=None, max_length=64, description="The request, when several are open."
    )


class LinkBody(BaseModel):
    """Who a decision link votes as, and what it does."""

    model_config = ConfigDict(extra="forbid")

    approver: str = Field(pattern=r"^[A-Za-z0-9._@\-]{1,100}$")
    groups: list[str] = Field(default_factory=list, max_length=50)
    decision: Literal["approve", "deny", "review"] = "review"
    expires_in: str | None = Field(
        default=None, description="ISO-8601 duration (default: the server's link lifetime)."
    )


class KestraReviewBody(BaseModel):
    """Kestra's review of an Approval task: the task run, the decision, a comment, inputs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    task_run_id: str | None = Field(default=None, alias="taskRunId", max_length=64)
    decision: str = Field(min_length=1, max_length=20)
    comment: str | None = Field(default=None, max_length=5000)
    inputs: dict[str, Any] = Field(default_factory=dict)


class CancelBody(_Cascading):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "wrong input"}]}
    )

    reason: str | None = Field(default=None, max_length=500)


class TerminateBody(_Cascading):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "runaway"}]}
    )

    reason: str = Field(min_length=1, max_length=500, description="Why (1-500 characters).")


class InjectBody(_Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"message": "use the EU template", "role": "user"}]},
    )

    message: str = Field(min_length=1, max_length=100_000)
    role: MessageRole = "user"


class TerminateReply(PublicModel):
    """Kubiya's TerminateWorkflowResponse, plus the state."""

    success: bool
    execution_id: str
    workflow_id: str
    state: str
    terminated_at: str | None
    message: str
    command_id: str


class ExecutionSummary(PublicModel):
    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: str
    labels: dict[str, str]
    created_at: str
    started_at: str | None
    ended_at: str | None
    duration_ms: int | None


class ExecutionPage(PublicModel):
    items: list[ExecutionSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page."
    )


class ValidatedInputs(PublicModel):
    valid: bool = True
    inputs: dict[str, Any]
    pause_id: str | None = None


# -- flows -------------------------------------------------------------------------


class FlowRecordView(PublicModel):
    """One stored revision of a flow (the source is the YAML text as stored)."""

    namespace: str
    id: str
    revision: int
    source: str
    created_at: str


class FlowSummary(PublicModel):
    namespace: str
    id: str
    revision: int
    created_at: str


class FlowDetail(FlowRecordView):
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    inputs_schema: dict[str, Any] = Field(description="JSON Schema of the flow's inputs.")
    task_ids: list[str] = Field(description="Every task id, in document order (nested included).")


class FlowValidation(PublicModel):
    valid: bool = True
    namespace: str
    id: str


class FlowFieldError(PublicModel):
    loc: list[str | int]
    msg: str
    type: str
    line: int | None = Field(default=None, description="Line in the submitted source, if known.")


class FlowErrors(PublicModel):
    detail: list[FlowFieldError]
    message: str


# -- events ------------------------------------------------------------------------


class EventPage(PublicModel):
    items: list[EventView] = Field(description="Oldest first.")
    next_after: int | None = Field(
        default=None, description="Pass as `after` for the next page; null when caught up."
    )


# -- bulk control -------------------------------------------------------------------


class BulkFilter(_Body):
    state: list[str] = Field(default_factory=list, description="Only these states.")
    namespace: str | None = None
    flow_id: str | None = None
    label: list[str] = Field(default_factory=list, description="key:value, all must match.")


class BulkBody(_Body):
    ids: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    filter: BulkFilter | None = None
    dry_run: bool = Field(default=False, description="Only list what would be touched.")
    reason: str | None = Field(default=None, max_length=500)
    inputs: dict[str, Any] = Field(default_factory=dict, description="resume only")
    pause_id: str | None = Field(default=None, max_length=64, description="resume only")


class BulkItem(PublicModel):
    execution_id: str
    status: int = Field(description="The status the single-execution route would answer.")
    state: str | None = None
    message: str
    terminated_at: str | None = Field(default=None, description="When a terminate was applied.")


class BulkReply(PublicModel):
    dry_run: bool
    results: list[BulkItem]


# -- seed compatibility ---------------------------------------------------------------


class ShannonReply(PublicModel):
    success: bool
    message: str
    task_id: str


class ShannonError(PublicModel):
    error: str


class ShannonControlState(PublicModel):
    """Shannon's control state (every field its SDK reads), plus pausepoint's own."""

    task_id: str
    state: str
    paused: bool
    checkpoint: str | None = None
    pause_reason: str | None = None
    is_paused: bool = Field(description="Shannon: a pause is requested or in effect.")
    is_cancelled: bool = Field(description="Shannon: a cancel or terminate is accepted.")
    paused_at: str | None = None
    paused_by: str | None = None
    cancel_reason: str | None = None
    cancelled_by: str | None = None


class KubiyaMessageBody(InjectBody):
    """Kubiya's message body: the same as inject's, under Kubiya's name."""


class SyntropicInjectBody(InjectBody):
    """Syntropic137's inject body: its API documents only the roles ``user`` and ``system``."""

    role: Literal["user", "system"] = "user"


class SyntropicReply(PublicModel):
    success: bool
    execution_id: str
    state: str | None = None
    message: str | None = None
    error: str | None = None


class SyntropicState(PublicModel):
    execution_id: str
    state: str


# -- ops and secrets ------------------------------------------------------------------


class Identity(PublicModel):
    """The caller, as its credentials say."""

    org: str
    role: Literal["viewer", "operator", "admin"]
    subject: str = Field(
        description='The key\'s user, "key:<id>" for an API key issued for no user, '
        "or the JWT's subject."
    )
    groups: list[str] = Field(
        default_factory=list,
        description="The caller's groups: the key's, or the JWT's 'groups' claim.",
    )


class Health(PublicModel):
    status: str


class SecretBody(_Body):
    value: str = Field(max_length=65_536)


class SecretNames(PublicModel):
    names: list[str]
