"""Kestra's PurgeLogs (``purge_logs``): remove log lines of the organization's executions.

The lines live in the executions' events; the store removes them from there,
a page of events at a time, and leaves the events (see store/logs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.flow.model import LOG_LEVELS
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext

TASK = "purge logs"


async def run_purge_logs(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``count`` (lines removed), ``executionLogsCount`` (the same) and
    ``nonExecutionLogsCount`` (0: pausepoint keeps no logs outside executions)."""
    if ctx.control is None:
        raise TaskError("purge logs task: this runtime cannot reach executions' logs")
    end = _moment(spec, "endDate")
    if end is None:
        raise TaskError("purge logs task: 'endDate' is required")
    levels = read.str_list(spec, "logLevels", TASK, [])
    unknown = [level for level in levels if level.upper() not in LOG_LEVELS]
    if unknown:
        raise TaskError(
            f"purge logs task: logLevels {unknown!r}: expected some of {', '.join(LOG_LEVELS)}"
        )
    removed = 0
    if _flag(spec, "purgeExecutionLogs"):
        removed = await ctx.control.purge_logs(
            ctx,
            {
                "end": end,
                "start": _moment(spec, "startDate"),
                "namespace": read.optional_str(spec, "namespace", TASK) or None,
                "flow_id": read.optional_str(spec, "flowId", TASK) or None,
                "execution_id": read.optional_str(spec, "executionId", TASK) or None,
                "levels": frozenset(level.upper() for level in levels) if levels else None,
            },
        )
    ctx.log("INFO", f"{removed} log line(s) purged")
    return {"count": removed, "executionLogsCount": removed, "nonExecutionLogsCount": 0}


def _moment(spec: Mapping[str, Any], name: str) -> float | None:
    text = read.optional_str(spec, name, TASK)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TaskError(f"purge logs task: {name} {text!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _flag(spec: Mapping[str, Any], name: str) -> bool:
    value = spec.get(name, True)
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false"):
            raise TaskError(f"purge logs task: {name} must be true or false, got {value!r}")
        return value.strip().lower() == "true"
    return bool(value)
