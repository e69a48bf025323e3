"""Reading a rendered task spec with one-line errors that name the property.

The engine renders ``{{ … }}`` templates into strings, so a property that a
flow declared as a boolean may arrive as ``"true"``; these readers accept that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pausepoint.errors import TaskError

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off", ""})


def _bad(task_type: str, key: str, expected: str, value: Any) -> TaskError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return TaskError(f"{task_type} task: '{key}' must be {expected}, got {shown}")


def required_str(spec: Mapping[str, Any], key: str, task_type: str) -> str:
    value = spec.get(key)
    if value is None:
        raise TaskError(f"{task_type} task: '{key}' is required")
    if not isinstance(value, str):
        raise _bad(task_type, key, "a string", value)
    return value


def optional_str(spec: Mapping[str, Any], key: str, task_type: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(task_type, key, "a string", value)
    return value


def flag(spec: Mapping[str, Any], key: str, task_type: str, default: bool = False) -> bool:
    value = spec.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad(task_type, key, "a boolean", value)


def str_list(
    spec: Mapping[str, Any], key: str, task_type: str, default: list[str] | None = None
) -> list[str]:
    value = spec.get(key)
    if value is None:
        if default is None:
            raise TaskError(f"{task_type} task: '{key}' is required")
        return list(default)
    if isinstance(value, str):
        # A template that rendered a whole list arrives as its JSON text.
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad(task_type, key, "a list of strings", value) from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad(task_type, key, "a list of strings", value)
    return list(value)


def str_map(spec: Mapping[str, Any], key: str, task_type: str) -> dict[str, str]:
    """A mapping of names to strings; scalar values are converted with ``str``."""
    value = spec.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(task_type, key, "a mapping of names to strings", value)
    result: dict[str, str] = {}
    for name, item in value.items():
        if isinstance(item, Mapping | list):
            raise _bad(task_type, f"{key}.{name}", "a string", item)
        if isinstance(item, bool):
            result[str(name)] = "true" if item else "false"
        else:
            result[str(name)] = "" if item is None else str(item)
    return result
