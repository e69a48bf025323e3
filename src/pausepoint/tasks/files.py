"""Kestra's storage tasks that make files: ``write`` (storage.Write) and ``local_files``
(LocalFiles, in a WorkingDirectory's directory).

Both store their files under their task run's own URIs (``taskId``, told by the
engine, names the task there), so a retried attempt rewrites the same files.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.storage import MAX_FILE_BYTES, SCHEME
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext, TaskControl
from pausepoint.tasks.shell import SHARED_DIRECTORY, work_root
from pausepoint.tasks.shell import _shared_directory as shared_directory
from pausepoint.tasks.shell import _write_files as write_files


async def run_write(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``uri``: ``content`` stored as a file named for the task, ``extension`` added."""
    control = _control(ctx, "write")
    content = spec.get("content")
    if content is None:
        raise TaskError("write task: 'content' is required")
    text = content if isinstance(content, str) else json.dumps(content)
    extension = read.optional_str(spec, "extension", "write") or ""
    if extension and not re.match(r"^\.?[A-Za-z0-9_\-]{1,16}$", extension):
        raise TaskError(f"write task: {extension!r} is not a file extension (such as .ion)")
    if extension and not extension.startswith("."):
        extension = "." + extension
    task_id = _task_id(spec, "write")
    uri = await control.write_file(ctx, task_id, f"{task_id}{extension}", text.encode())
    return {"uri": uri}


async def run_local_files(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Write ``inputs`` into the WorkingDirectory's directory, then store the files
    matching ``outputs``; outputs ``uris`` (relative name -> URI).

    Outside a WorkingDirectory the task has a scratch directory of its own, removed
    when it ends.
    """
    control = _control(ctx, "LocalFiles")
    task_id = _task_id(spec, "LocalFiles")
    inputs = await _inputs(spec, ctx, control)
    patterns = _patterns(spec)
    shared = spec.get(SHARED_DIRECTORY)
    if isinstance(shared, Mapping):
        directory = await asyncio.to_thread(shared_directory, shared, ctx)
        found = await asyncio.to_thread(_exchange, directory, inputs, patterns)
    else:
        found = await asyncio.to_thread(_in_scratch, work_root(ctx.settings), inputs, patterns)
    uris = {name: await control.write_file(ctx, task_id, name, data) for name, data in found}
    if inputs or uris:
        ctx.log("INFO", f"{len(inputs)} file(s) written, {len(uris)} file(s) stored")
    return {"uris": uris}


def _in_scratch(root: Path, inputs: dict[str, str], patterns: list[str]) -> list[tuple[str, bytes]]:
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="localfiles-", dir=root) as scratch:
        return _exchange(Path(scratch).resolve(), inputs, patterns)


def _exchange(
    directory: Path, inputs: dict[str, str], patterns: list[str]
) -> list[tuple[str, bytes]]:
    """Write ``inputs`` into ``directory``; then the files matching ``patterns``, each
    once, as (relative name, content)."""
    write_files(directory, inputs)
    found: dict[str, bytes] = {}
    for pattern in patterns:
        if pattern == "**" or pattern.endswith("/**"):
            pattern += "/*"  # Kestra's `dir/**` is every file below; Path.glob's, only folders
        for path in sorted(directory.glob(pattern)):
            if not path.is_file() or directory not in path.resolve().parents:
                continue
            name = path.relative_to(directory).as_posix()
            if name not in found:
                if path.stat().st_size > MAX_FILE_BYTES:
                    raise TaskError(f"LocalFiles task: {name} is larger than a stored file may be")
                found[name] = path.read_bytes()
    return list(found.items())


async def _inputs(
    spec: Mapping[str, Any], ctx: LeafContext, control: TaskControl
) -> dict[str, str]:
    """``inputs`` as name -> text; a value that is a stored file's URI becomes its content."""
    value = spec.get("inputs")
    if isinstance(value, str):
        # Kestra also takes the files as a JSON object (a template rendering one).
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise TaskError(
                f"LocalFiles task: 'inputs' must be a mapping or a JSON object, got {value[:80]!r}"
            ) from None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TaskError(f"LocalFiles task: 'inputs' must be a mapping, got {type(value).__name__}")
    files: dict[str, str] = {}
    for name, content in value.items():
        parts = str(name).split("/")
        if str(name).startswith("/") or ".." in parts or not str(name).strip():
            raise TaskError(f"LocalFiles task: inputs name {name!r} must stay inside the directory")
        if isinstance(content, str) and content.startswith(SCHEME):
            files[str(name)] = (await control.read_file(ctx, content)).decode(
                "utf-8", errors="replace"
            )
        elif isinstance(content, str):
            files[str(name)] = content
        else:
            files[str(name)] = "" if content is None else json.dumps(content)
    return files


def _patterns(spec: Mapping[str, Any]) -> list[str]:
    patterns = read.str_list(spec, "outputs", "LocalFiles", [])
    for pattern in patterns:
        if pattern.startswith("/") or ".." in pattern.split("/"):
            raise TaskError(
                f"LocalFiles task: outputs pattern {pattern!r} must stay inside the directory"
            )
    return patterns


def _task_id(spec: Mapping[str, Any], task: str) -> str:
    task_id = spec.get("taskId")
    if not isinstance(task_id, str):
        raise TaskError(f"{task} task: the engine did not name the task (taskId)")
    return task_id


def _control(ctx: LeafContext, task: str) -> TaskControl:
    if ctx.control is None:
        raise TaskError(f"{task} task: this runtime has no internal storage")
    return ctx.control
