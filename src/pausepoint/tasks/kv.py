"""Kestra's key-value store tasks: ``kv_set``, ``kv_get``, ``kv_delete``.

The store is per namespace (the flow's unless ``namespace`` is given) and per
organization: a task reaches only its own organization's keys, through its
runtime's :class:`~pausepoint.tasks.context.TaskControl`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.flow.durations import parse_duration
from pausepoint.flow.model import KEY_PATTERN, KV_TYPES
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext, TaskControl

NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$"


async def run_kv_set(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Set ``key`` to ``value`` (converted to ``kvType``); outputs nothing, as Kestra's."""
    control, namespace, key = _target(spec, ctx, "kv set")
    if "value" not in spec:
        raise TaskError("kv set task: 'value' is required")
    value = typed_value(spec.get("value"), read.optional_str(spec, "kvType", "kv set"))
    ttl_text = read.optional_str(spec, "ttl", "kv set")
    try:
        ttl = parse_duration(ttl_text) if ttl_text else None
    except ValueError as error:
        raise TaskError(f"kv set task: ttl: {error}") from None
    await control.kv_put(
        ctx,
        namespace,
        key,
        value,
        overwrite=read.flag(spec, "overwrite", "kv set", default=True),
        ttl=ttl,
        description=read.optional_str(spec, "kvDescription", "kv set"),
    )
    ctx.log("INFO", f"key {key!r} of namespace {namespace} set")
    return {}


async def run_kv_get(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``value``: the key's value, or null when it has none (a failure with
    ``errorOnMissing``)."""
    control, namespace, key = _target(spec, ctx, "kv get")
    found, value = await control.kv_get(ctx, namespace, key)
    if not found and read.flag(spec, "errorOnMissing", "kv get"):
        raise TaskError(f"kv get task: no value for key {key!r} in namespace {namespace}")
    return {"value": value}


async def run_kv_delete(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Outputs ``deleted``: whether the key had a value (a failure without one when
    ``errorOnMissing``)."""
    control, namespace, key = _target(spec, ctx, "kv delete")
    deleted = await control.kv_delete(ctx, namespace, key)
    if not deleted and read.flag(spec, "errorOnMissing", "kv delete"):
        raise TaskError(f"kv delete task: no value for key {key!r} in namespace {namespace}")
    return {"deleted": deleted}


def typed_value(value: Any, kv_type: str | None) -> Any:
    """``value`` as Kestra's kv.Set keeps it: text is converted to ``kvType``; other
    values (a template that rendered a number) are kept as they are."""
    kind = (kv_type or "STRING").strip().upper()
    if kind not in KV_TYPES:
        raise TaskError(
            f"kv set task: kvType must be one of {', '.join(KV_TYPES)}, got {kv_type!r}"
        )
    if not isinstance(value, str) or kind == "STRING":
        return value
    text = value.strip()
    try:
        if kind == "NUMBER":
            number = json.loads(text)
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError
            return number
        if kind == "BOOLEAN":
            return text.lower() == "true"
        if kind in ("DATETIME", "DATE"):
            datetime.fromisoformat(text.replace("Z", "+00:00"))
            return text
        if kind == "DURATION":
            parse_duration(text)
            return text
        return json.loads(text)
    except ValueError:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise TaskError(f"kv set task: value {shown!r} is not a {kind}") from None


def _target(spec: Mapping[str, Any], ctx: LeafContext, task: str) -> tuple[TaskControl, str, str]:
    if ctx.control is None:
        raise TaskError(f"{task} task: this runtime has no key-value store")
    key = read.required_str(spec, "key", task)
    if not re.match(KEY_PATTERN, key):
        raise TaskError(
            f"{task} task: {key!r} is not a key: start with a letter or digit, "
            "then letters, digits, '.', '_', '-'"
        )
    namespace = read.required_str(spec, "namespace", task)
    if not re.match(NAMESPACE_PATTERN, namespace):
        raise TaskError(f"{task} task: {namespace!r} is not a namespace")
    return ctx.control, namespace, key
