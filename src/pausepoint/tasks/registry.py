"""Which executor runs which leaf task type, and the single entry point."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.storage import deferred_reads, has_mangled_read, log_file_name, resolve_reads
from pausepoint.tasks.agent import run_agent_llm
from pausepoint.tasks.context import LeafContext
from pausepoint.tasks.files import run_local_files, run_write
from pausepoint.tasks.http import run_http
from pausepoint.tasks.items import run_items_batch, run_items_merge, run_items_split
from pausepoint.tasks.kv import run_kv_delete, run_kv_get, run_kv_set
from pausepoint.tasks.log import run_log
from pausepoint.tasks.log_fetch import run_log_fetch
from pausepoint.tasks.log_purge import run_purge_logs
from pausepoint.tasks.loops import run_loop_store, run_loop_values
from pausepoint.tasks.python import run_python, shutdown_thread_pool
from pausepoint.tasks.resume import run_resume
from pausepoint.tasks.retry import run_retry_execution
from pausepoint.tasks.shell import run_shell
from pausepoint.tasks.subflow import run_subflow
from pausepoint.tasks.toggle import run_toggle_trigger
from pausepoint.tasks.values import run_output_values, run_return
from pausepoint.tracing import tracing_for

Executor = Callable[[Mapping[str, Any], LeafContext], Awaitable[dict[str, Any]]]

EXECUTORS: Mapping[str, Executor] = {
    "log": run_log,
    "return": run_return,
    "outputs": run_output_values,
    "python": run_python,
    "shell": run_shell,
    "http": run_http,
    "resume": run_resume,
    "subflow": run_subflow,
    "toggle_trigger": run_toggle_trigger,
    "items_split": run_items_split,
    "items_batch": run_items_batch,
    "items_merge": run_items_merge,
    "agent_llm": run_agent_llm,
    "write": run_write,
    "local_files": run_local_files,
    "log_fetch": run_log_fetch,
    "kv_set": run_kv_set,
    "kv_get": run_kv_get,
    "kv_delete": run_kv_delete,
    "purge_logs": run_purge_logs,
    "loop_values": run_loop_values,
    "loop_store": run_loop_store,
    "retry_execution": run_retry_execution,
}


STAGE_TYPES = frozenset(
    {"items_split", "items_batch", "items_merge", "loop_values", "loop_store", "retry_execution"}
)

# Leaf types with no effect outside the execution: a runtime may run them inside the
# engine step that starts them (a crash re-runs them and nothing else notices).
PURE_TYPES = frozenset({"return", "outputs", "log"})


async def run_leaf(task_type: str, spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Run one leaf task and return its outputs (a JSON-serialisable dict).

    Raises TaskError with a one-line message when the task fails.
    ``asyncio.CancelledError`` propagates once the task has cleaned up: a
    subprocess group is SIGTERMed, then SIGKILLed after the grace period and
    reaped; an HTTP request is aborted; an async Python function is cancelled;
    a sync Python function cannot be stopped and finishes in its thread, its
    result discarded.
    """
    executor = EXECUTORS.get(task_type)
    if executor is None:
        # ForEachItem's and Loop's stages are the engine's to run, never a flow's to name.
        known = sorted(name for name in EXECUTORS if name not in STAGE_TYPES)
        raise TaskError(f"unknown leaf task type {task_type!r}; known types: {', '.join(known)}")
    if reads := deferred_reads(spec):
        spec = await _with_files_read(spec, reads, ctx)
    if links := LINK_MARKS.findall(repr(spec)):
        spec = await _with_links(spec, set(links), ctx)
    if has_mangled_read(spec):
        raise TaskError(
            "read() gives a file's text as a value or inside text only: "
            "a filter or function applied to it cannot see the text"
        )
    if spec.get("logToFile"):
        return await _with_log_file(task_type, executor, spec, ctx)
    return await _traced(task_type, executor, spec, ctx)


async def _with_log_file(
    task_type: str, executor: Executor, spec: Mapping[str, Any], ctx: LeafContext
) -> dict[str, Any]:
    """Run the task with its log lines kept out of the execution's events and stored,
    whether it succeeds or fails, as its attempt's own file (the run's ``log_file``)."""
    control, task_id = ctx.control, spec.get("taskId")
    if control is None or not isinstance(task_id, str):
        raise TaskError("logToFile: this runtime has no internal storage to write logs to")
    lines: list[str] = []

    def keep(level: str, message: str) -> None:
        lines.append(f"{datetime.now(UTC).isoformat()} {level} {message}\n")

    async def store() -> None:
        content = "".join(lines).encode()
        await control.write_file(ctx, task_id, log_file_name(ctx.attempt), content)

    try:
        outputs = await _traced(task_type, executor, spec, replace(ctx, log=keep))
    except Exception:
        await store()
        raise
    await store()
    return outputs


async def _traced(
    task_type: str, executor: Executor, spec: Mapping[str, Any], ctx: LeafContext
) -> dict[str, Any]:
    tracing = tracing_for(ctx.settings)
    if not tracing.enabled:
        return await executor(spec, ctx)
    attributes: dict[str, str | int] = {
        "pausepoint.execution_id": ctx.execution_id,
        "pausepoint.task_run_id": ctx.task_run_id,
        "pausepoint.task_type": task_type,
        "pausepoint.attempt": ctx.attempt,
    }
    with tracing.span("pausepoint.task_run", traceparent=ctx.traceparent, attributes=attributes):
        return await executor(spec, ctx)


async def _with_files_read(
    spec: Mapping[str, Any], uris: set[str], ctx: LeafContext
) -> Mapping[str, Any]:
    """``spec`` with the text of each file its expressions ``read()``."""
    if ctx.control is None:
        raise TaskError("read(): this runtime has no internal storage")
    texts = {}
    for uri in sorted(uris):
        texts[uri] = (await ctx.control.read_file(ctx, uri)).decode("utf-8", errors="replace")
    resolved = resolve_reads(dict(spec), texts)
    assert isinstance(resolved, dict)
    return resolved


# What `{{ approval.links.<user>.<action> }}` renders to in the engine (which signs
# nothing): replaced here, when the task runs, by a signed link (service/links.py).
LINK_MARKS = re.compile(
    r"\[\[pausepoint-(?:link (\S+) (\S+) (approve|deny|review)|callback (\S+))\]\]"
)


async def _with_links(
    spec: Mapping[str, Any], links: set[tuple[str, str, str, str]], ctx: LeafContext
) -> dict[str, Any]:
    if ctx.control is None:
        raise TaskError("approval links and callbacks need a runtime that can sign them")
    urls = {}
    for pause_id, approver, action, task_id in sorted(links):
        if task_id:
            url = await ctx.control.callback_url(ctx, task_id)
            urls[f"[[pausepoint-callback {task_id}]]"] = url
        else:
            url = await ctx.control.decision_link(ctx, pause_id, approver, action)
            urls[f"[[pausepoint-link {pause_id} {approver} {action}]]"] = url

    def replace(value: Any) -> Any:
        if isinstance(value, str):
            return LINK_MARKS.sub(lambda match: urls[match.group(0)], value)
        if isinstance(value, dict):
            return {key: replace(item) for key, item in value.items()}
        if isinstance(value, list):
            return [replace(item) for item in value]
        return value

    replaced = replace(dict(spec))
    assert isinstance(replaced, dict)
    return replaced


async def shutdown_executors() -> None:
    """Release process-wide executor resources; call once when the runtime stops.

    The thread pool for sync Python tasks stops taking work: calls still queued
    are cancelled, calls already running finish in the background (threads
    cannot be killed). Executors recreate what they need if used again.
    """
    shutdown_thread_pool()
