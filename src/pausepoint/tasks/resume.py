"""The ``resume`` task (Kestra's Resume): resume another paused execution.

The runtime gives the task its :class:`~pausepoint.tasks.context.TaskControl`,
which sends the command through the control plane as the task's flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext


async def run_resume(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``{"executionId", "state"}``: the execution resumed and its state after."""
    if ctx.control is None:
        raise TaskError("resume task: this runtime cannot send control commands")
    execution_id = read.required_str(spec, "executionId", "resume")
    inputs = spec.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise TaskError(f"resume task: 'inputs' must be a mapping, got {inputs!r}")
    outputs = await ctx.control.resume(
        ctx,
        execution_id,
        namespace=read.optional_str(spec, "namespace", "resume"),
        flow_id=read.optional_str(spec, "flowId", "resume"),
        inputs=inputs,
    )
    ctx.log("INFO", f"resumed execution {execution_id}")
    return outputs
