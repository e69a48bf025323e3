"""What the models and the template parser say about a flow, as problems at YAML paths.

pydantic reports ``loc`` tuples through discriminated unions and Python field
names; these are turned back into the paths and property names the author
wrote, with messages that say what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pausepoint.flow.aliases import SHORT_TYPES
from pausepoint.flow.inputs import InputSpec
from pausepoint.flow.model import (
    ExecutionAssertionSla,
    Flow,
    MaxDurationSla,
    Retry,
    TaskBase,
)
from pausepoint.flow.problems import Path_, Problem, show
from pausepoint.flow.templates import syntax_error

_NOT_TEMPLATES = frozenset({"description", "displayName"})

# --- pydantic errors -> YAML paths ----------------------------------------------------

_NOUNS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_ID_HINT = "use letters, digits, '_' and '-', starting with a letter or digit"


def _camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part.title() for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _match_key(mapping: Mapping[Any, Any], part: str) -> str | None:
    for candidate in (part, _snake(part), _camel(part), part + "_"):
        if candidate in mapping:
            return candidate
    return None


def _loc_to_path(data: Any, loc: tuple[str | int, ...], *, missing: bool) -> Path_:
    """The YAML path of a pydantic ``loc``: discriminator and union tags dropped."""
    path: list[str | int] = []
    current = data
    for position, part in enumerate(loc):
        if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str):
            key = _match_key(current, part)
            if key is not None:
                path.append(key)
                current = current[key]
            elif missing and position == len(loc) - 1:
                path.append(part)
        # anything else is a union member or discriminator tag, not a YAML key
    return tuple(path)


def _model_for(data: Any, path: Path_) -> type[BaseModel] | None:
    """The model that validates the mapping at ``path`` (for listing known properties)."""
    if not path:
        return Flow
    if path[-1] == "retry":
        return Retry
    if len(path) >= 2 and path[-2] in ("inputs", "onResume") and isinstance(path[-1], int):
        return InputSpec
    if path[:1] == ("sla",) and len(path) == 2 and isinstance(data, dict):
        assertion = data.get("type") == "EXECUTION_ASSERTION"
        return ExecutionAssertionSla if assertion else MaxDurationSla
    if isinstance(data, dict) and data.get("type") in SHORT_TYPES:
        for model in TaskBase.__subclasses__():
            if data["type"] in str(model.model_fields["type"].annotation):
                return model
    return None


def _lookup(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def pydantic_problems(
    exc: ValidationError, data: dict[str, Any], bad_tasks: set[Path_]
) -> list[Problem]:
    grouped: dict[Path_, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        path = _loc_to_path(data, tuple(error["loc"]), missing=error["type"] == "missing")
        if error["type"].startswith("union_tag") or any(
            path[: len(bad)] == bad for bad in bad_tasks
        ):
            continue
        grouped.setdefault(path, []).append(error)
    problems: list[Problem] = []
    for path, errors in grouped.items():
        nouns = [_NOUNS[e["type"]] for e in errors if e["type"] in _NOUNS]
        if nouns and len(nouns) == len(errors):
            unique = list(dict.fromkeys(nouns))
            msg = f"expected {' or '.join(unique)}, got {show(errors[0]['input'])}"
            problems.append(Problem(path, msg, type=errors[0]["type"]))
            continue
        for error in errors:
            msg = _translate(error, data, path)
            # Model validators name the property in front ("defaults: …"); point at it.
            field_msg = re.match(r"^(\w+): (.*)$", msg, re.DOTALL)
            target = _lookup(data, path)
            if field_msg and isinstance(target, dict) and field_msg.group(1) in target:
                problems.append(Problem((*path, field_msg.group(1)), field_msg.group(2)))
            else:
                problems.append(Problem(path, msg, type=error["type"]))
    return problems


def _translate(error: ErrorDetails, data: dict[str, Any], path: Path_) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    name = path[-1] if path else ""
    if kind == "missing":
        return "required property is missing"
    if kind == "extra_forbidden":
        model = _model_for(_lookup(data, path[:-1]), path[:-1])
        message = f"unknown property {name!r}"
        if model is not None:
            known = sorted(info.alias or key for key, info in model.model_fields.items())
            message += f"; known properties: {', '.join(known)}"
        return message
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "string_pattern_mismatch" and name == "id":
        return f"{show(value)} is not a valid id: {_ID_HINT}"
    if kind == "literal_error":
        return f"{show(value)} is not allowed; expected {ctx.get('expected')}"
    if kind == "too_short" and name in ("tasks", "then"):
        return "needs at least one task"
    msg = str(error["msg"])
    return (
        msg[:1].lower()
        + msg[1:]
        + (f", got {show(value)}" if not isinstance(value, dict | list) else "")
    )


# --- templates ------------------------------------------------------------------------


def template_problems(data: Any, path: Path_) -> Iterator[Problem]:
    if isinstance(data, str):
        problem = syntax_error(data)
        if problem is not None:
            yield Problem(path, problem, type="template_syntax")
    elif isinstance(data, dict):
        for key, value in data.items():
            if key not in _NOT_TEMPLATES:
                yield from template_problems(value, (*path, key))
    elif isinstance(data, list):
        for position, value in enumerate(data):
            yield from template_problems(value, (*path, position))
