"""ForEachItem's stages that touch storage: cutting the items, gathering the outputs.

Both write their files under their task run's own URIs, so a retried attempt
rewrites the same files rather than adding others. The subflow per batch is
the ``subflow`` task's executor with the batch's position.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.storage import StorageError, split_items
from pausepoint.tasks.context import LeafContext
from pausepoint.tasks.subflow import run_subflow


async def run_items_split(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``splits`` (a file listing the batch files), ``batches`` (their URIs)
    and ``numberOfBatches``."""
    control = _control(ctx)
    uri = spec.get("items")
    if not isinstance(uri, str) or not uri.startswith("kestra://"):
        raise TaskError(
            f"ForEachItem: cannot split the items from {uri!r}: not an internal storage URI "
            "(give a FILE input or a task's stored file)"
        )
    content = await control.read_file(ctx, uri)
    batch = spec.get("batch") or {}
    try:
        batches = split_items(
            content,
            rows=batch.get("rows"),
            size=batch.get("bytes"),
            partitions=batch.get("partitions"),
            separator=str(batch.get("separator") or "\n"),
        )
    except StorageError as error:
        raise TaskError(f"ForEachItem: {error}") from None
    task_id = str(spec["taskId"])
    uris = [
        await control.write_file(ctx, task_id, f"batch-{n}.txt", data)
        for n, data in enumerate(batches)
    ]
    splits = await control.write_file(ctx, task_id, "splits.txt", "\n".join(uris).encode())
    ctx.log("INFO", f"{len(content)} bytes cut into {len(uris)} batch(es)")
    return {"splits": splits, "batches": uris, "numberOfBatches": len(uris)}


async def run_items_batch(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Start the subflow of one batch (``iteration`` says which)."""
    return await run_subflow(spec, ctx)


async def run_items_merge(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``subflowOutputs``: one JSON line per subflow with outputs, in batch order
    (no outputs when none has any)."""
    control = _control(ctx)
    gathered = [outputs for outputs in spec.get("subflowOutputs") or [] if outputs]
    if not gathered:
        return {}
    lines = "".join(json.dumps(outputs, sort_keys=True) + "\n" for outputs in gathered)
    uri = await control.write_file(ctx, str(spec["taskId"]), "outputs.jsonl", lines.encode())
    return {"subflowOutputs": uri}


def _control(ctx: LeafContext) -> Any:
    if ctx.control is None:
        raise TaskError("ForEachItem: this runtime has no internal storage")
    return ctx.control
