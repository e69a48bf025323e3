"""The ``subflow`` task (Kestra's Subflow): start another flow's execution as a child.

The leaf only starts the child, through the runtime's
:class:`~pausepoint.tasks.context.TaskControl` (keyed by the task run: a
retry finds the child already started). Waiting for the child's end is the
engine's: a pause point of kind ``subflow`` that the child's end answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext


async def run_subflow(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``{"executionId"}``: the child execution, started (or found) for this run."""
    if ctx.control is None:
        raise TaskError("subflow task: this runtime cannot start executions")
    namespace = read.required_str(spec, "namespace", "subflow")
    flow_id = read.required_str(spec, "flowId", "subflow")
    inputs = spec.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise TaskError(f"subflow task: 'inputs' must be a mapping, got {inputs!r}")
    outputs = await ctx.control.start_subflow(
        ctx,
        namespace=namespace,
        flow_id=flow_id,
        revision=_revision(spec.get("revision")),
        inputs=inputs,
        labels=_labels(spec.get("labels")),
        inherit_labels=read.flag(spec, "inheritLabels", "subflow"),
        wait=read.flag(spec, "wait", "subflow", default=True),
        # A ForEachItem batch's position (the engine adds it to the batch's spec).
        iteration=spec.get("iteration") if isinstance(spec.get("iteration"), int) else None,
    )
    ctx.log("INFO", f"started execution {outputs['executionId']} of {namespace}.{flow_id}")
    return outputs


def _revision(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        revision = int(value)
    except (TypeError, ValueError):
        raise TaskError(f"subflow task: 'revision' must be a whole number, got {value!r}") from None
    if revision < 1:
        raise TaskError(f"subflow task: 'revision' must be 1 or more, got {revision}")
    return revision


def _labels(value: Any) -> dict[str, str]:
    """A mapping, or Kestra's ``[{key, value}]`` pairs; values as text."""
    if not value:
        return {}
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
        pairs = [(item.get("key"), item.get("value")) for item in value]
    else:
        raise TaskError(f"subflow task: 'labels' must be a mapping or key/value pairs: {value!r}")
    return {str(key): str(label) for key, label in pairs if key not in (None, "")}
