"""The ``log`` task: writes messages to the task run's log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.tasks.context import LeafContext

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


async def run_log(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Record each message at ``level`` (default INFO); outputs nothing."""
    level = spec.get("level") or "INFO"
    if not isinstance(level, str) or level.upper() not in LEVELS:
        raise TaskError(f"log task: 'level' must be one of {', '.join(LEVELS)}, got {level!r}")
    message = spec.get("message")
    if message is None:
        raise TaskError("log task: 'message' is required")
    messages = message if isinstance(message, list) else [message]
    for item in messages:
        ctx.log(level.upper(), item if isinstance(item, str) else str(item))
    return {}
