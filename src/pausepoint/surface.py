"""``ControlSurface``: what :class:`~pausepoint.Engine` and :class:`~pausepoint.AsyncClient` share.

Code written against this protocol works the same in-process (an ``Engine`` on
the database) and remotely (an ``AsyncClient`` on a server), and gets the same
public models back from both: the CLI's commands are written once this way.

A leaf module: it names only public data shapes, so that importing it (say, to
type a function) never loads the server, the store or a runtime.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pausepoint.models import (
    CommandView,
    ControlResult,
    EventView,
    ExecutionView,
    StateView,
    TriggerView,
)

if TYPE_CHECKING:
    # Only for type checkers: the wire models cost their import time to build.
    from pausepoint.wire import ExecutionPage, FlowRecordView, FlowSummary, TerminateReply

__all__ = ["ControlSurface"]


class ControlSurface(Protocol):
    """Flows, executions, control and events of one organization, for one caller.

    Every method raises the same :class:`~pausepoint.errors.PausepointError`
    subclasses on both implementations: ``NotFound``, ``Conflict`` (a state that
    forbids the operation), ``InvalidInput`` (naming each field), ``FlowError``.
    """

    # flows

    async def apply_flow(self, source: str | os.PathLike[str]) -> FlowRecordView:
        """Create or update a flow: ``source`` is YAML text, or the path of a YAML file."""
        ...

    async def flows(self) -> list[FlowSummary]:
        """The latest revision of every flow."""
        ...

    # triggers

    async def triggers(self, namespace: str, flow_id: str) -> list[TriggerView]:
        """A flow's triggers and their state (next tick, last fired, paused)."""
        ...

    async def pause_trigger(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerView:
        """Pause a trigger: it fires nothing until resumed."""
        ...

    async def resume_trigger(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        *,
        catch_up: Literal["QUEUE", "DROP"] = "DROP",
    ) -> TriggerView:
        """Resume a trigger: ``QUEUE`` fires what it missed while paused, ``DROP`` not."""
        ...

    # executions

    async def start_execution(
        self,
        namespace: str,
        flow_id: str,
        *,
        inputs: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        revision: int | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionView:
        """Start an execution of a stored flow (inputs validated and coerced)."""
        ...

    async def execution_page(
        self,
        *,
        states: Sequence[str] = (),
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> ExecutionPage:
        """One page of executions, newest first; pass ``next_cursor`` on for the next.
        ``parent_id``: the executions its subflow tasks started; ``root_id``: its whole tree."""
        ...

    async def execution(self, execution_id: str) -> ExecutionView:
        """Task runs, outputs, open pause points and context of an execution."""
        ...

    async def state(self, execution_id: str) -> StateView:
        """The execution's state, checkpoint and open pause points."""
        ...

    async def audit(self, execution_id: str) -> list[CommandView]:
        """Every control command accepted for the execution, oldest first."""
        ...

    # control

    async def pause(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
        freeze_clock: bool | None = None,
    ) -> ControlResult: ...

    async def resume(
        self,
        execution_id: str,
        *,
        inputs: dict[str, Any] | None = None,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult: ...

    async def cancel(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult: ...

    # The HTTP API answers terminate in Kubiya's shape; both carry execution_id,
    # state and message.
    async def terminate(
        self,
        execution_id: str,
        *,
        reason: str,
        idempotency_key: str | None = None,
        cascade: bool | None = None,
    ) -> ControlResult | TerminateReply: ...

    async def inject(
        self,
        execution_id: str,
        message: str,
        *,
        role: Literal["user", "system"] = "user",
        idempotency_key: str | None = None,
    ) -> ControlResult: ...

    # events

    async def events(self, execution_id: str, *, after: int = 0) -> list[EventView]:
        """The events recorded so far after sequence number ``after``."""
        ...

    def follow(self, execution_id: str, *, after: int = 0) -> AsyncIterator[EventView]:
        """Every event after ``after``, live, in order; ends after the terminal event."""
        ...

    async def wait(
        self,
        execution_id: str,
        *,
        until: Callable[[ExecutionView], bool] | None = None,
        timeout: float | None = None,
    ) -> ExecutionView:
        """Wait until the execution is terminal (or ``until`` holds); its view then."""
        ...
