"""The engine's ``retry_execution`` stage: start the execution that retries this one.

Kestra's CREATE_NEW_EXECUTION retry. The engine decides when (a durable timer);
this leaf only starts the new execution, through the runtime's
:class:`~pausepoint.tasks.context.TaskControl`, keyed by its task run: a rerun
after a crash finds the execution it started.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.tasks.context import LeafContext


async def run_retry_execution(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``{"executionId"}``: the new execution, started (or found) for this run."""
    if ctx.control is None:
        raise TaskError("retry: this runtime cannot start executions")
    original_id, attempt = spec.get("originalId"), spec.get("attempt")
    created_at = spec.get("originalCreatedAt")
    if not isinstance(original_id, str) or not isinstance(attempt, int):
        raise TaskError(f"retry: the engine gave no origin for the new execution: {spec!r}")
    outputs = await ctx.control.retry_execution(
        ctx,
        original_id=original_id,
        attempt=attempt,
        original_created_at=float(created_at) if isinstance(created_at, int | float) else 0.0,
    )
    ctx.log("INFO", f"started execution {outputs['executionId']} to retry this one")
    return outputs
