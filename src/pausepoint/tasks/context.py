"""What a leaf task executor receives besides its rendered spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pausepoint.config import Settings

LogFn = Callable[[str, str], None]
"""``log(level, message)``: records one log line for the task run."""

EmitFn = Callable[[str, dict[str, Any]], None]
"""``emit(type, data)``: a live event for followers (e.g. model tokens), never stored."""


class TaskControl(Protocol):
    """Control actions a task may take on other executions, as its flow, in its organization.

    They go through the control plane like an API call (roles, tenancy,
    idempotency, audit); ``caller`` names the task run, whose id keys the
    command so that a retried attempt does not act twice.
    """

    async def resume(
        self,
        caller: LeafContext,
        execution_id: str,
        *,
        namespace: str | None,
        flow_id: str | None,
        inputs: dict[str, Any],
    ) -> dict[str, Any]:
        """Resume ``execution_id``; its outputs. Raises TaskError naming what went wrong."""
        ...

    async def start_subflow(
        self,
        caller: LeafContext,
        *,
        namespace: str,
        flow_id: str,
        revision: int | None,
        inputs: dict[str, Any],
        labels: dict[str, str],
        inherit_labels: bool,
        wait: bool,
        iteration: int | None = None,
    ) -> dict[str, Any]:
        """Start ``namespace.flow_id`` as a child of the caller's task run (once, however
        often it is called); ``{"executionId": ...}``. ``iteration`` is a ForEachItem
        batch's position. Raises TaskError naming what went wrong."""
        ...

    async def retry_execution(
        self, caller: LeafContext, *, original_id: str, attempt: int, original_created_at: float
    ) -> dict[str, Any]:
        """Start a new execution of the caller's flow retrying the caller's execution
        (Kestra's CREATE_NEW_EXECUTION): its inputs, labels, trigger and parent, attempt
        number ``attempt``. Once, however often it is called; ``{"executionId": ...}``."""
        ...

    async def read_file(self, caller: LeafContext, uri: str) -> bytes:
        """The content stored at ``uri`` in the caller's organization; TaskError if none."""
        ...

    async def decision_link(
        self, caller: LeafContext, pause_id: str, approver: str, action: str
    ) -> str:
        """A signed link voting ``action`` as ``approver`` on the caller's execution's
        approval request ``pause_id`` (see service/links.py)."""
        ...

    async def toggle_trigger(
        self,
        caller: LeafContext,
        *,
        namespace: str | None,
        flow_id: str | None,
        trigger_id: str,
        enabled: bool | None,
    ) -> dict[str, Any]:
        """Pause (``enabled`` False) or resume a trigger of a flow of the caller's
        organization (its own flow by default); None flips it. Its state after."""
        ...

    async def callback_url(self, caller: LeafContext, task_id: str) -> str:
        """A callback URL completing the Pause task ``task_id`` of the caller's execution."""
        ...

    async def write_file(self, caller: LeafContext, task_id: str, name: str, content: bytes) -> str:
        """Store ``content`` as the caller's task run's file ``name`` (a relative path); its URI."""
        ...

    async def execution_logs(
        self,
        caller: LeafContext,
        execution_id: str | None,
        *,
        namespace: str | None,
        flow_id: str | None,
    ) -> list[dict[str, Any]]:
        """The log lines of ``execution_id`` (the caller's own when None), in order:
        ``{taskId, taskRunId, level, message, timestamp}``. Without ``namespace`` and
        ``flowId`` the execution must be one of the caller's flow. TaskError naming the
        execution when it is not found (another organization's never is)."""
        ...

    async def kv_put(
        self,
        caller: LeafContext,
        namespace: str,
        key: str,
        value: Any,
        *,
        overwrite: bool,
        ttl: float | None,
        description: str | None,
    ) -> None:
        """Set ``key`` in ``namespace``'s key-value store of the caller's organization
        (expiring ``ttl`` seconds from now). TaskError when ``overwrite`` is false and
        the key has a value."""
        ...

    async def kv_get(self, caller: LeafContext, namespace: str, key: str) -> tuple[bool, Any]:
        """``(True, value)`` for a key with an unexpired value, else ``(False, None)``."""
        ...

    async def purge_logs(self, caller: LeafContext, which: dict[str, Any]) -> int:
        """Remove the log lines of the caller's organization's executions that ``which``
        selects (``end``, ``start``: epoch seconds; ``namespace``, ``flow_id``,
        ``execution_id``, ``levels``); how many went."""
        ...

    async def kv_delete(self, caller: LeafContext, namespace: str, key: str) -> bool:
        """Remove ``key``; whether it had an unexpired value."""
        ...

    async def organization(self, caller: LeafContext) -> str:
        """The organization the caller's execution belongs to (what the operator's
        per-organization rules for ``shell`` and ``http`` are keyed by)."""
        ...


@dataclass(frozen=True)
class LeafContext:
    """Identity and environment of one attempt of one task run.

    ``task_run_id`` is the same for every retry of a task run, so task code can
    use it as an idempotency key; ``attempt`` counts from 1. ``traceparent`` is
    the W3C trace context the execution was started with: the run's span joins it.
    """

    execution_id: str
    task_run_id: str
    attempt: int
    settings: Settings
    log: LogFn
    emit: EmitFn | None = None
    traceparent: str | None = None
    control: TaskControl | None = None
