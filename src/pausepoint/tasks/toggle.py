"""The ``toggle_trigger`` task (Kestra's trigger Toggle): pause or resume a trigger.

Like Resume, it acts through the control plane as its flow (operator role, its
organization only, audited), so it obeys the rules the API does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext


def _enabled(value: Any) -> bool | None:
    """``enabled`` as rendered: a boolean, its text, or absent (flip the trigger)."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise TaskError(f"toggle task: 'enabled' must be true or false, got {value!r}")


async def run_toggle_trigger(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``{"namespace", "flowId", "trigger", "enabled"}``: the trigger after."""
    if ctx.control is None:
        raise TaskError("toggle task: this runtime cannot send control commands")
    outputs = await ctx.control.toggle_trigger(
        ctx,
        namespace=read.optional_str(spec, "namespace", "toggle"),
        flow_id=read.optional_str(spec, "flowId", "toggle"),
        trigger_id=read.required_str(spec, "trigger", "toggle"),
        enabled=_enabled(spec.get("enabled")),
    )
    state = "enabled" if outputs["enabled"] else "disabled"
    ctx.log("INFO", f"trigger {outputs['trigger']} of {outputs['flowId']} is {state}")
    return outputs
