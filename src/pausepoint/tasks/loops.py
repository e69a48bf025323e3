"""The storage stages of Kestra's Loop, which the engine (doing no I/O) cannot do itself.

``loop_values`` reads the values of the stored file a Loop's ``values`` name;
``loop_store`` (fetchType STORE) writes each iteration's outputs to a stored
file of its own, whose URI the loop keeps in their place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.storage import SCHEME, stored_values
from pausepoint.tasks.context import LeafContext, TaskControl


async def run_loop_values(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``values``: a JSON array's elements, or each non-blank line as its text."""
    control = _control(ctx)
    uri = spec.get("values")
    if not isinstance(uri, str) or not uri.strip().startswith(SCHEME):
        raise TaskError(f"Loop: values {uri!r} is not a stored file's URI (kestra:///...)")
    values = stored_values(await control.read_file(ctx, uri.strip()))
    ctx.log("INFO", f"{len(values)} value(s) read from {uri.strip()}")
    return {"values": values}


async def run_loop_store(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``outputs``: per iteration ``{item, outputs: {uri}}``, in order, the URI
    naming a JSON file of the outputs that iteration declared."""
    control = _control(ctx)
    task_id = spec.get("taskId")
    iterations = spec.get("iterations")
    if not isinstance(task_id, str) or not isinstance(iterations, list):
        raise TaskError("Loop: the engine did not hand over the iterations' outputs")
    stored: list[dict[str, Any]] = []
    for entry in iterations:
        item = entry.get("item") or {}
        content = json.dumps(entry.get("outputs") or {}, sort_keys=True).encode()
        uri = await control.write_file(ctx, task_id, f"iteration-{item.get('index')}.json", content)
        stored.append({"item": item, "outputs": {"uri": uri}})
    return {"outputs": stored}


def _control(ctx: LeafContext) -> TaskControl:
    if ctx.control is None:
        raise TaskError("Loop: this runtime has no internal storage")
    return ctx.control
