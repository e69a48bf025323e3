"""One frozen request per control command: the seam auth, audit and idempotency wrap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pausepoint.errors import FieldError, InvalidInput
from pausepoint.models import MESSAGE_ROLES, ControlResult, MessageRole
from pausepoint.service.operations import Operation

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine


@dataclass(frozen=True, kw_only=True)
class ControlRequest(Operation[ControlResult]):
    """A command to one execution, recorded durably before it is acknowledged."""

    execution_id: str
    actor: str = "anonymous"
    idempotency_key: str | None = None
    request_id: str | None = None
    traceparent: str | None = None  # the caller's W3C trace context (set by the chain)
    reason: str | None = None
    wait: bool = True  # wait (up to command_wait_timeout) for the command to be applied
    # Whether pause, resume, cancel or terminate reaches the subflow executions the
    # execution waits for; None: its flow's cascade policy decides.
    cascade: bool | None = None

    kind = "control"
    required_role = "operator"
    action = "controlling an execution"
    idempotent = True
    result_type = ControlResult

    @property
    def target(self) -> str:
        return self.execution_id

    async def run(self, engine: Engine) -> ControlResult:
        return await engine.control(self)

    def payload(self) -> dict[str, Any]:
        return {} if self.cascade is None else {"cascade": self.cascade}

    def validate(self) -> None:
        if self.reason is not None and len(self.reason) > 500:
            raise InvalidInput(
                "reason is longer than 500 characters",
                [FieldError(("body", "reason"), "at most 500 characters", "string_too_long")],
            )


@dataclass(frozen=True, kw_only=True)
class PauseRequest(ControlRequest):
    # Shannon's rule: a task already paused (or pausing) is not paused again (409).
    # pausepoint's own pause lets a hold join a Pause task that waits.
    refuse_when_paused: bool = False
    # Whether its deadlines stand still while it holds (None: the flow's clock policy).
    freeze_clock: bool | None = None
    kind = "pause"

    def payload(self) -> dict[str, Any]:
        payload = super().payload()
        if self.freeze_clock is not None:
            payload["freeze_clock"] = self.freeze_clock
        return payload


@dataclass(frozen=True, kw_only=True)
class ResumeRequest(ControlRequest):
    inputs: dict[str, Any] = field(default_factory=dict)
    pause_id: str | None = None
    kind = "resume"

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "inputs": self.inputs, "pause_id": self.pause_id}


@dataclass(frozen=True, kw_only=True)
class DecideRequest(ControlRequest):
    """A yes or no on one open pause point (Shannon's approval decision).

    Yes resumes it; no takes the denial path: the pause point's own way to say no
    when it has one (an agent tool call's ``decision: reject``, a Pause task's
    BOOLEAN ``approved`` input), otherwise the execution is cancelled. ``reason``
    (the feedback) goes into a STRING ``reason`` or ``feedback`` input the pause
    point declares, or becomes the reason of the cancel.
    """

    pause_id: str
    approved: bool
    kind = "decide"

    async def run(self, engine: Engine) -> ControlResult:
        return await engine.decide(self)


VOTE_WORDS = {
    "approve": "approve",
    "approved": "approve",
    "deny": "deny",
    "denied": "deny",
    "respond": "respond",  # an agent's tool call only: answer in place of the tool
}


@dataclass(frozen=True, kw_only=True)
class VoteRequest(ControlRequest):
    """A vote, approve or deny, on an approval task's open request.

    ``groups`` and ``role`` are the voter's, set by the chain from the caller's
    credentials (the quorum counts groups; ``adminOverride`` looks at the role).
    ``decision`` is checked when the vote is admitted, after the execution is found
    (another organization's execution is unknown, whatever the body says).
    """

    decision: str
    pause_id: str | None = None
    comment: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    role: str = "operator"
    kind = "resume"

    def payload(self) -> dict[str, Any]:
        return {
            "vote": VOTE_WORDS.get(self.decision.lower(), self.decision),
            "pause_id": self.pause_id,
            "comment": self.comment,
            "inputs": self.inputs,
            "groups": list(self.groups),
            "role": self.role,
        }


@dataclass(frozen=True, kw_only=True)
class CallbackRequest(ControlRequest):
    """A callback token's completion of a Pause task's wait (see service/callbacks.py)."""

    task_id: str
    inputs: dict[str, Any] = field(default_factory=dict)
    kind = "resume"

    def payload(self) -> dict[str, Any]:
        return {"callback": self.task_id, "inputs": self.inputs}


@dataclass(frozen=True, kw_only=True)
class HeartbeatRequest(ControlRequest):
    """A callback token's sign of life: its Pause task's heartbeatTimeout starts again."""

    task_id: str
    kind = "resume"

    def payload(self) -> dict[str, Any]:
        return {"heartbeat": self.task_id}


@dataclass(frozen=True, kw_only=True)
class CancelRequest(ControlRequest):
    kind = "cancel"


@dataclass(frozen=True, kw_only=True)
class TerminateRequest(ControlRequest):
    kind = "terminate"

    def validate(self) -> None:
        super().validate()
        if not self.reason or not self.reason.strip():
            raise InvalidInput(
                "terminate needs a reason (1-500 characters)",
                [FieldError(("body", "reason"), "a reason is required to terminate", "missing")],
            )


@dataclass(frozen=True, kw_only=True)
class InjectRequest(ControlRequest):
    message: str
    role: MessageRole = "user"
    kind = "inject"

    def payload(self) -> dict[str, Any]:
        return {"message": self.message, "role": self.role}

    def validate(self) -> None:
        super().validate()
        errors = []
        if not isinstance(self.message, str) or not self.message.strip():
            errors.append(
                FieldError(("body", "message"), "the message must not be empty", "missing")
            )
        elif len(self.message) > 100_000:
            errors.append(
                FieldError(("body", "message"), "at most 100000 characters", "string_too_long")
            )
        if self.role not in MESSAGE_ROLES:
            errors.append(
                FieldError(
                    ("body", "role"),
                    f"role must be one of {', '.join(MESSAGE_ROLES)}; got {self.role!r}",
                    "literal_error",
                )
            )
        if errors:
            raise InvalidInput("; ".join(str(e) for e in errors), errors)
