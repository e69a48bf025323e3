"""Kestra's log Fetch (``log_fetch``): an execution's log lines as a stored file.

The lines come from the execution's events, read through the runtime's
:class:`~pausepoint.tasks.context.TaskControl` in the task's own organization.
The file holds one JSON object per line (Kestra writes ION rows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.flow.model import LOG_LEVELS
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext


async def run_log_fetch(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``uri`` (the lines at ``level`` or above, of the tasks ``tasksId`` or of
    all) and ``size`` (how many)."""
    if ctx.control is None:
        raise TaskError("log fetch task: this runtime cannot read executions' logs")
    level = (read.optional_str(spec, "level", "log fetch") or "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise TaskError(
            f"log fetch task: 'level' must be one of {', '.join(LOG_LEVELS)}, got {level!r}"
        )
    tasks = read.str_list(spec, "tasksId", "log fetch", [])
    lines = await ctx.control.execution_logs(
        ctx,
        read.optional_str(spec, "executionId", "log fetch") or None,
        namespace=read.optional_str(spec, "namespace", "log fetch"),
        flow_id=read.optional_str(spec, "flowId", "log fetch"),
    )
    lowest = LOG_LEVELS.index(level)
    kept = [
        line
        for line in lines
        if _rank(line.get("level")) >= lowest and (not tasks or line.get("taskId") in tasks)
    ]
    content = "".join(json.dumps(line, sort_keys=True) + "\n" for line in kept)
    task_id = spec.get("taskId")
    if not isinstance(task_id, str):
        raise TaskError("log fetch task: the engine did not name the task (taskId)")
    uri = await ctx.control.write_file(ctx, task_id, "logs.jsonl", content.encode())
    return {"uri": uri, "size": len(kept)}


def _rank(level: object) -> int:
    name = str(level or "INFO").upper()
    name = {"WARNING": "WARN"}.get(name, name)
    return LOG_LEVELS.index(name) if name in LOG_LEVELS else LOG_LEVELS.index("INFO")
