"""Request and response bodies of the HTTP API (every route has a schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartExecutionBody(_Body):
    namespace: str = Field(min_length=1, max_length=255)
    flow_id: str = Field(min_length=1, max_length=255)
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    revision: int | None = Field(default=None, ge=1)


class PauseBody(_Body):
    reason: str | None = Field(default=None, max_length=500)


class ResumeBody(_Body):
    inputs: dict[str, Any] = Field(default_factory=dict)
    pause_id: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class CancelBody(_Body):
    reason: str | None = Field(default=None, max_length=500)


class TerminateBody(_Body):
    reason: str = Field(min_length=1, max_length=500, description="Why (1-500 characters).")


class InjectBody(_Body):
    message: str = Field(min_length=1, max_length=100_000)
    role: Literal["user", "system"] = "user"


class TerminateReply(BaseModel):
    """Kubiya's TerminateWorkflowResponse, plus the state."""

    success: bool
    execution_id: str
    workflow_id: str
    state: str
    terminated_at: str | None
    message: str
    command_id: str


class ExecutionSummary(BaseModel):
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


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page."
    )


class ValidatedInputs(BaseModel):
    valid: bool = True
    inputs: dict[str, Any]
    pause_id: str | None = None
