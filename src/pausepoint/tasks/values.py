"""The ``return`` and ``outputs`` tasks: they only publish values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.tasks.context import LeafContext


async def run_return(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``{"value": format}`` (``None`` when ``format`` is absent)."""
    return {"value": spec.get("format")}


async def run_output_values(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``{"values": values}``, read downstream as ``outputs.<id>.values.<name>``."""
    values = spec.get("values")
    if values is None:
        return {"values": {}}
    if not isinstance(values, Mapping):
        raise TaskError(f"outputs task: 'values' must be a mapping, got {type(values).__name__}")
    return {"values": dict(values)}
