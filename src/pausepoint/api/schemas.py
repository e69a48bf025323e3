"""The HTTP API's bodies (defined in the leaf module ``pausepoint.wire``) and the control
request each body asks for."""

from __future__ import annotations

from typing import Any

from pausepoint.service.requests import (
    CancelRequest,
    ControlRequest,
    InjectRequest,
    PauseRequest,
    ResumeRequest,
    TerminateRequest,
)
from pausepoint.wire import (
    BulkBody,
    BulkFilter,
    BulkItem,
    BulkReply,
    CancelBody,
    EventPage,
    ExecutionPage,
    ExecutionSummary,
    FlowDetail,
    FlowErrors,
    FlowFieldError,
    FlowRecordView,
    FlowSummary,
    FlowValidation,
    Health,
    Identity,
    InjectBody,
    KestraReviewBody,
    KubiyaMessageBody,
    PauseBody,
    ResumeBody,
    ReviewBody,
    SecretBody,
    SecretNames,
    ShannonControlState,
    ShannonError,
    ShannonReply,
    StartExecutionBody,
    SyntropicInjectBody,
    SyntropicReply,
    SyntropicState,
    TerminateBody,
    TerminateReply,
    ValidatedInputs,
)

ControlBody = PauseBody | ResumeBody | CancelBody | TerminateBody | InjectBody


def control_request(body: ControlBody, execution_id: str, **common: Any) -> ControlRequest:
    """The control request a body asks for (every route that takes one builds it here)."""
    if isinstance(body, ResumeBody):
        return ResumeRequest(
            execution_id=execution_id,
            inputs=body.inputs,
            pause_id=body.pause_id,
            reason=body.reason,
            cascade=body.cascade,
            **common,
        )
    if isinstance(body, InjectBody):
        return InjectRequest(
            execution_id=execution_id, message=body.message, role=body.role, **common
        )
    if isinstance(body, TerminateBody):
        return TerminateRequest(
            execution_id=execution_id, reason=body.reason, cascade=body.cascade, **common
        )
    if isinstance(body, CancelBody):
        return CancelRequest(
            execution_id=execution_id, reason=body.reason, cascade=body.cascade, **common
        )
    return PauseRequest(
        execution_id=execution_id,
        reason=body.reason,
        cascade=body.cascade,
        freeze_clock=body.freeze_clock,
        **common,
    )


__all__ = [
    "BulkBody",
    "BulkFilter",
    "BulkItem",
    "BulkReply",
    "CancelBody",
    "ControlBody",
    "EventPage",
    "ExecutionPage",
    "ExecutionSummary",
    "FlowDetail",
    "FlowErrors",
    "FlowFieldError",
    "FlowRecordView",
    "FlowSummary",
    "FlowValidation",
    "Health",
    "Identity",
    "InjectBody",
    "KestraReviewBody",
    "KubiyaMessageBody",
    "PauseBody",
    "ResumeBody",
    "ReviewBody",
    "SecretBody",
    "SecretNames",
    "ShannonControlState",
    "ShannonError",
    "ShannonReply",
    "StartExecutionBody",
    "SyntropicInjectBody",
    "SyntropicReply",
    "SyntropicState",
    "TerminateBody",
    "TerminateReply",
    "ValidatedInputs",
    "control_request",
]
