"""Loading flows: YAML text -> validated :class:`~pausepoint.flow.model.Flow`.

Every problem is reported as ``source:line field-path: message``, e.g.
``approval.yaml:14 tasks[2].pauseDuration: 'P5X' is not an ISO-8601 duration
(e.g. PT30S, PT5M, P1D)``, and all problems of a flow are reported at once in
one :class:`~pausepoint.errors.FlowError` (one line each, sorted by line).

YAML is read with YAML 1.2 core-schema rules, as Kestra reads it: only
``true``/``false`` are booleans (``yes``, ``on`` stay strings), ``010`` is
ten, and dates and ``10:30`` stay strings. Hostile documents are refused
before they cost much: over :data:`MAX_FLOW_BYTES`, several documents, more
than :data:`MAX_YAML_NODES` nodes once aliases are expanded, or nesting deeper
than :data:`MAX_YAML_DEPTH`. Mapping keys must be strings and appear once.

Kestra's core task types are accepted as aliases (see
:mod:`pausepoint.flow.aliases`); field paths in messages always use the
property names the author wrote.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pausepoint.errors import FieldError, FlowError
from pausepoint.flow.aliases import (
    RETRY_RENAMES,
    SHORT_TYPES,
    TASK_BLOCKS,
    resolve_task_type,
)
from pausepoint.flow.durations import is_template
from pausepoint.flow.inputs import InputSpec, input_id_problems
from pausepoint.flow.model import Flow, Retry, Task, TaskBase
from pausepoint.flow.paths import iter_tasks, path_of, task_at
from pausepoint.flow.templates import syntax_error

__all__ = [
    "MAX_FLOW_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "Flow",
    "Task",
    "flow_from_dict",
    "format_path",
    "iter_tasks",
    "load_flow",
    "load_flow_file",
    "load_yaml_data",
    "path_of",
    "task_at",
]

MAX_FLOW_BYTES = 1024 * 1024
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 100

Path_ = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_NOT_TEMPLATES = frozenset({"description", "displayName"})


# --- YAML -----------------------------------------------------------------------------


class _Refused(yaml.MarkedYAMLError):
    """A document refused by a size limit; never a problem of one field."""


class _Loader(yaml.SafeLoader):
    """Composes nodes only (no Python objects), with YAML 1.2 core-schema scalars."""

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_YAML_DEPTH or self._nodes > MAX_YAML_NODES:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            what = (
                f"nesting deeper than {MAX_YAML_DEPTH} levels"
                if self._depth > MAX_YAML_DEPTH
                else f"more than {MAX_YAML_NODES} YAML nodes"
            )
            raise _Refused(problem=f"refused: {what}", problem_mark=mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_MERGE, r"^<<$", "<"),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


_CSafeLoader: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _c_loader() -> type[yaml.SafeLoader] | None:
    """libyaml's loader with the same scalar rules, when PyYAML was built with it."""
    if _CSafeLoader is None:
        return None
    return type(
        "_CLoader", (_CSafeLoader,), {"yaml_implicit_resolvers": _Loader.yaml_implicit_resolvers}
    )


_C_LOADER = _c_loader()


def _check_events(text: str, loader: type[yaml.SafeLoader]) -> None:
    """Refuse too many nodes, too deep nesting or a second document, before composing.

    libyaml composes recursively in C, so the limits must hold before it starts.
    """
    depth = nodes = documents = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Refused(
                    problem="a flow file holds exactly one YAML document; found another",
                    problem_mark=event.start_mark,  # type: ignore[arg-type]
                )
        elif isinstance(event, yaml.NodeEvent):
            nodes += 1
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
            if depth > MAX_YAML_DEPTH or nodes > MAX_YAML_NODES:
                what = (
                    f"nesting deeper than {MAX_YAML_DEPTH} levels"
                    if depth > MAX_YAML_DEPTH
                    else f"more than {MAX_YAML_NODES} YAML nodes"
                )
                raise _Refused(problem=f"refused: {what}", problem_mark=event.start_mark)  # type: ignore[arg-type]
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _compose_node(text: str) -> Node | None:
    if _C_LOADER is not None:
        _check_events(text, _C_LOADER)
        c_loader = _C_LOADER(text)
        try:
            return c_loader.get_single_node()
        finally:
            c_loader.dispose()
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


@dataclass
class _Problem:
    path: Path_
    msg: str
    line: int | None = None
    type: str = "value_error"
    also: Path_ | None = None  # another place involved, e.g. the first use of an id


@dataclass
class _Document:
    """Plain data built from YAML nodes, with the line of every path."""

    positions: dict[Path_, int] = field(default_factory=dict)
    problems: list[_Problem] = field(default_factory=list)
    expanded: int = 0

    def build(self, node: Node, path: Path_, depth: int) -> Any:
        self.expanded += 1
        line = node.start_mark.line + 1
        if self.expanded > MAX_YAML_NODES or depth > MAX_YAML_DEPTH:
            limit = (
                f"more than {MAX_YAML_NODES} nodes once aliases are expanded"
                if self.expanded > MAX_YAML_NODES
                else f"nesting deeper than {MAX_YAML_DEPTH} levels"
            )
            raise _Refused(problem=f"refused: {limit}", problem_mark=node.start_mark)
        self.positions.setdefault(path, line)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode) and node.tag == _SEQ:
            return [self.build(item, (*path, n), depth + 1) for n, item in enumerate(node.value)]
        if isinstance(node, MappingNode) and node.tag == _MAP:
            return self._mapping(node, path, depth)
        self.problems.append(_Problem(path, f"unsupported YAML tag {node.tag!r}", line))
        return None

    def _scalar(self, node: ScalarNode, path: Path_) -> Any:
        text: str = node.value
        tag = node.tag
        try:
            if tag == _STR:
                return text
            if tag == "tag:yaml.org,2002:null":
                return None
            if tag == "tag:yaml.org,2002:bool":
                return text.lower() == "true"
            if tag == "tag:yaml.org,2002:int":
                digits = text.lstrip("+-")
                sign = -1 if text.startswith("-") else 1
                base = 16 if digits.startswith("0x") else 8 if digits.startswith("0o") else 10
                return sign * int(digits[2:] if base != 10 else digits, base)
            if tag == "tag:yaml.org,2002:float":
                special = text.lstrip("+-").lower()
                if special in (".inf", ".nan"):
                    return float(text.replace(".", "", 1))
                return float(text)
        except ValueError:
            msg = f"{text[:20]!r}… is not a usable number ({len(text)} characters)"
            self.problems.append(_Problem(path, msg, _line(node)))
            return None
        self.problems.append(_Problem(path, f"unsupported YAML tag {tag!r}", _line(node)))
        return None

    def _pairs(self, node: MappingNode, depth: int) -> tuple[list[Any], list[Any]]:
        """(merged, explicit) key/value node pairs; ``<<`` merges are expanded."""
        merged: list[Any] = []
        explicit: list[Any] = []
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.tag == _MERGE:
                sources = value.value if isinstance(value, SequenceNode) else [value]
                for source in sources:
                    self.expanded += 1
                    if depth > MAX_YAML_DEPTH or self.expanded > MAX_YAML_NODES:
                        raise _Refused(
                            problem="refused: merge keys nest too deep",
                            problem_mark=source.start_mark,
                        )
                    if not isinstance(source, MappingNode):
                        raise _Refused(
                            problem="a '<<' merge needs a mapping or a list of them",
                            problem_mark=source.start_mark,
                        )
                    inner_merged, inner_explicit = self._pairs(source, depth + 1)
                    merged.extend(inner_explicit + inner_merged)
            else:
                explicit.append((key, value))
        return merged, explicit

    def _mapping(self, node: MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        merged, explicit = self._pairs(node, depth)
        result: dict[str, Any] = {}
        # Explicit keys first: they override merged ones, and earlier merges win.
        pairs = [(k, v, False) for k, v in explicit] + [(k, v, True) for k, v in merged]
        for key_node, value_node, from_merge in pairs:
            if not (isinstance(key_node, ScalarNode) and key_node.tag == _STR):
                if isinstance(key_node, ScalarNode):
                    msg = f"key {_show(key_node.value)} must be a string (quote it)"
                else:
                    msg = "keys must be strings, not collections"
                self.problems.append(_Problem(path, msg, _line(key_node)))
                continue
            key: str = key_node.value
            if key in result:
                if not from_merge:
                    first = self.positions.get((*path, key))
                    msg = f"duplicate key {key!r} (first at line {first})"
                    self.problems.append(_Problem((*path, key), msg, _line(key_node)))
                continue
            self.positions.setdefault((*path, key), _line(key_node))
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _yaml_error(source: str, text: str, exc: yaml.YAMLError) -> FlowError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or "malformed YAML"
        refused = isinstance(exc, _Refused)
        if problem == "but found another document":
            problem = "a flow file holds exactly one YAML document; found another"
            refused = True
        context = ""
        if exc.context:
            at = exc.context_mark
            context = f" ({exc.context}" + (f" at line {at.line + 1})" if at else ")")
        msg = problem if refused else f"invalid YAML: {problem}{context}"
    else:
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
        where = f"{source}:{line}" if line else source
        reason = getattr(exc, "reason", None) or str(exc)
        character = getattr(exc, "character", None)
        if isinstance(character, int):
            reason += f" (character #x{character:04X})"
        msg = f"invalid YAML: {reason}"
    return FlowError(f"{where}: {msg}", [FieldError((), msg, "yaml_error")])


def _compose(text: str, source: str) -> tuple[Any, _Document]:
    size = len(text) if len(text) > MAX_FLOW_BYTES else len(text.encode("utf-8", "replace"))
    if size > MAX_FLOW_BYTES:
        message = f"{source}: refused: {size} bytes is over the {MAX_FLOW_BYTES}-byte limit"
        raise FlowError(message, [FieldError((), message.split(": ", 1)[1], "too_large")])
    document = _Document()
    try:
        node = _compose_node(text)
        data = document.build(node, (), 0) if node is not None else None
    except yaml.YAMLError as exc:
        raise _yaml_error(source, text, exc) from None
    if document.problems:
        raise _flow_error(source, document.problems, document.positions, {})
    return data, document


def load_yaml_data(text: str, *, source: str = "<yaml>") -> Any:
    """Plain data (dicts, lists, scalars) from one YAML document, with the flow limits.

    Raises :class:`FlowError` for malformed or refused YAML.
    """
    return _compose(text, source)[0]


# --- Kestra aliases and structure -----------------------------------------------------


@dataclass
class _Normaliser:
    """Rewrites Kestra spellings into pausepoint's, remembering what the author wrote."""

    problems: list[_Problem] = field(default_factory=list)
    renames: dict[Path_, dict[str, str]] = field(default_factory=dict)
    bad_tasks: set[Path_] = field(default_factory=set)
    task_ids: dict[str, Path_] = field(default_factory=dict)

    def flow(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for block in ("tasks", "errors", "finally"):
            if isinstance(out.get(block), list):
                out[block] = self.tasks(out[block], (block,))
        if isinstance(out.get("inputs"), list):
            self.inputs(out["inputs"], ("inputs",))
        return out

    def tasks(self, items: list[Any], path: Path_) -> list[Any]:
        return [self.task(item, (*path, position)) for position, item in enumerate(items)]

    def task(self, data: Any, path: Path_) -> Any:
        if not isinstance(data, dict):
            self._bad(path, f"expected a task (a mapping with id and type), got {_show(data)}")
            return data
        type_name = data.get("type")
        known = ", ".join(SHORT_TYPES)
        if not isinstance(type_name, str):
            what = "has no 'type'" if type_name is None else f"has type {_show(type_name)}"
            self._bad(path, f"task {what}; known types: {known}")
            return data
        alias = resolve_task_type(type_name)
        if alias is None:
            self._bad((*path, "type"), f"unknown task type {type_name!r}; known types: {known}")
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            new = alias.renames.get(key, key)
            if new != key:
                if new in data:
                    self.problems.append(
                        _Problem((*path, key), f"give {key!r} or {new!r}, not both")
                    )
                    continue
                self.renames.setdefault(path, {})[new] = key
            out[new] = value
        out["type"] = alias.short
        for key, value in alias.defaults.items():
            out.setdefault(key, value)
        self._task_checks(out, path)
        for key, kind in TASK_BLOCKS.get(alias.short, {}).items():
            value = out.get(key)
            if kind == "list" and isinstance(value, list):
                out[key] = self.tasks(value, (*path, key))
            elif kind == "single" and value is not None:
                out[key] = self.task(value, (*path, key))
            elif kind == "cases" and isinstance(value, dict):
                out[key] = {
                    case: self.tasks(tasks, (*path, key, case))
                    if isinstance(tasks, list)
                    else tasks
                    for case, tasks in value.items()
                }
        return out

    def _bad(self, path: Path_, msg: str) -> None:
        self.bad_tasks.add(path if path[-1] != "type" else path[:-1])
        self.problems.append(_Problem(path, msg))

    def _task_checks(self, task: dict[str, Any], path: Path_) -> None:
        task_id = task.get("id")
        if isinstance(task_id, str):
            first = self.task_ids.get(task_id)
            if first is not None:
                msg = f"duplicate task id {task_id!r}"
                self.problems.append(_Problem((*path, "id"), msg, type="duplicate_id", also=first))
            else:
                self.task_ids[task_id] = (*path, "id")
        retry = task.get("retry")
        if isinstance(retry, dict) and any(key in retry for key in RETRY_RENAMES):
            renamed = {RETRY_RENAMES.get(key, key): value for key, value in retry.items()}
            for old, new in RETRY_RENAMES.items():
                if old in retry:
                    self.renames.setdefault((*path, "retry"), {})[new] = old
            task["retry"] = renamed
        kind = task["type"]
        if kind == "pause":
            if task.get("delay") is not None and task.get("pauseDuration") is not None:
                self.problems.append(
                    _Problem((*path, "delay"), "give pauseDuration or delay (deprecated), not both")
                )
            if isinstance(task.get("onResume"), list):
                self.inputs(task["onResume"], (*path, "onResume"))
        elif kind == "switch":
            if not task.get("cases") and not task.get("defaults"):
                self.problems.append(_Problem(path, "a switch needs 'cases' or 'defaults'"))
        elif kind == "foreach":
            values = task.get("values")
            if isinstance(values, str) and not is_template(values):
                try:
                    parsed = json.loads(values)
                except ValueError:
                    parsed = None
                if isinstance(parsed, list):
                    task["values"] = parsed
                else:
                    self.problems.append(
                        _Problem(
                            (*path, "values"),
                            "values must be a list, a JSON array or a {{ … }} template",
                        )
                    )

    def inputs(self, items: list[Any], path: Path_) -> None:
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        for position, msg in input_id_problems(ids):
            self.problems.append(_Problem((*path, position, "id"), msg))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _pydantic_problems(
    exc: ValidationError, data: dict[str, Any], bad_tasks: set[Path_]
) -> list[_Problem]:
    grouped: dict[Path_, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        path = _loc_to_path(data, tuple(error["loc"]), missing=error["type"] == "missing")
        if error["type"].startswith("union_tag") or any(
            path[: len(bad)] == bad for bad in bad_tasks
        ):
            continue
        grouped.setdefault(path, []).append(error)
    problems: list[_Problem] = []
    for path, errors in grouped.items():
        nouns = [_NOUNS[e["type"]] for e in errors if e["type"] in _NOUNS]
        if nouns and len(nouns) == len(errors):
            unique = list(dict.fromkeys(nouns))
            msg = f"expected {' or '.join(unique)}, got {_show(errors[0]['input'])}"
            problems.append(_Problem(path, msg, type=errors[0]["type"]))
            continue
        for error in errors:
            msg = _translate(error, data, path)
            # Model validators name the property in front ("defaults: …"); point at it.
            field_msg = re.match(r"^(\w+): (.*)$", msg, re.DOTALL)
            target = _lookup(data, path)
            if field_msg and isinstance(target, dict) and field_msg.group(1) in target:
                problems.append(_Problem((*path, field_msg.group(1)), field_msg.group(2)))
            else:
                problems.append(_Problem(path, msg, type=error["type"]))
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
        return f"{_show(value)} is not a valid id: {_ID_HINT}"
    if kind == "literal_error":
        return f"{_show(value)} is not allowed; expected {ctx.get('expected')}"
    if kind == "too_short" and name in ("tasks", "then"):
        return "needs at least one task"
    msg = str(error["msg"])
    return (
        msg[:1].lower()
        + msg[1:]
        + (f", got {_show(value)}" if not isinstance(value, dict | list) else "")
    )


# --- templates ------------------------------------------------------------------------


def _template_problems(data: Any, path: Path_) -> Iterator[_Problem]:
    if isinstance(data, str):
        problem = syntax_error(data)
        if problem is not None:
            yield _Problem(path, problem, type="template_syntax")
    elif isinstance(data, dict):
        for key, value in data.items():
            if key not in _NOT_TEMPLATES:
                yield from _template_problems(value, (*path, key))
    elif isinstance(data, list):
        for position, value in enumerate(data):
            yield from _template_problems(value, (*path, position))


# --- assembling -----------------------------------------------------------------------


def format_path(path: Path_) -> str:
    """``('tasks', 2, 'pauseDuration')`` -> ``tasks[2].pauseDuration``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _user_path(path: Path_, renames: Mapping[Path_, Mapping[str, str]]) -> Path_:
    out: list[str | int] = []
    for part in path:
        renamed = renames.get(tuple(out))
        if renamed and isinstance(part, str) and part in renamed:
            part = renamed[part]
        out.append(part)
    return tuple(out)


def _line_of(path: Path_, positions: Mapping[Path_, int]) -> int | None:
    for end in range(len(path), -1, -1):
        line = positions.get(path[:end])
        if line is not None:
            return line
    return None


def _flow_error(
    source: str,
    problems: list[_Problem],
    positions: Mapping[Path_, int],
    renames: Mapping[Path_, Mapping[str, str]],
) -> FlowError:
    lines: list[tuple[int, str, FieldError]] = []
    seen: set[tuple[Path_, str]] = set()
    for problem in problems:
        path = _user_path(problem.path, renames)
        line = problem.line or _line_of(path, positions)
        msg = problem.msg
        if problem.also is not None:
            also = _user_path(problem.also, renames)
            also_line = _line_of(also, positions)
            place = format_path(also) + (f" at line {also_line}" if also_line else "")
            msg += f" (also used by {place})"
        if (path, msg) in seen:
            continue
        seen.add((path, msg))
        where = f"{source}:{line}" if line is not None else source
        shown = format_path(path)
        text = f"{where} {shown}: {msg}" if shown else f"{where}: {msg}"
        lines.append((line or 0, text, FieldError(path, msg, problem.type)))
    lines.sort(key=lambda item: item[0])
    return FlowError("\n".join(text for _, text, _ in lines), [error for *_, error in lines])


def _build(data: Any, source: str, positions: Mapping[Path_, int]) -> Flow:
    if data is None:
        raise FlowError(f"{source}: the flow is empty", [FieldError((), "the flow is empty")])
    if not isinstance(data, dict):
        msg = f"a flow must be a mapping (with id, namespace and tasks), got {type(data).__name__}"
        raise FlowError(f"{source}: {msg}", [FieldError((), msg)])
    normaliser = _Normaliser()
    normalised = normaliser.flow(data)
    problems = [*normaliser.problems, *_template_problems(data, ())]
    try:
        flow = Flow.model_validate(normalised)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, normalised, normaliser.bad_tasks))
    if problems:
        raise _flow_error(source, problems, positions, normaliser.renames)
    return flow


def _plain(data: Any, path: Path_, depth: int, budget: list[int], problems: list[_Problem]) -> Any:
    """A copy of ``data`` with mappings as dicts and sequences as lists (same limits as YAML).

    Other values (numbers, dates, models) are kept as they are for the models
    to validate. Non-string keys are added to ``problems`` and left out.
    """
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_YAML_DEPTH:
        limit = "too many values" if budget[0] < 0 else f"nesting deeper than {MAX_YAML_DEPTH}"
        raise FlowError(f"refused: {limit}", [FieldError(path, f"refused: {limit}")])
    if isinstance(data, Mapping):
        copy: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(key, str):
                copy[key] = _plain(value, (*path, key), depth + 1, budget, problems)
            else:
                problems.append(_Problem(path, f"key {_show(key)} must be a string"))
        return copy
    if isinstance(data, list | tuple):
        return [
            _plain(value, (*path, position), depth + 1, budget, problems)
            for position, value in enumerate(data)
        ]
    return data


def flow_from_dict(data: Mapping[str, Any], *, source: str = "<flow>") -> Flow:
    """A validated flow from already-parsed data (e.g. JSON from the API).

    Same rules and messages as :func:`load_flow`, without line numbers.
    ``data`` is not modified. Raises :class:`FlowError` listing every problem.
    """
    problems: list[_Problem] = []
    try:
        plain = _plain(data, (), 0, [MAX_YAML_NODES], problems)
    except FlowError as exc:
        raise FlowError(f"{source}: {exc.message}", exc.errors) from None
    if problems:
        raise _flow_error(source, problems, {}, {})
    return _build(plain, source, {})


def load_flow(text: str, *, source: str = "<flow>") -> Flow:
    """A validated flow from YAML ``text``; ``source`` names it in messages.

    Raises :class:`FlowError` whose message has one ``source:line path: problem``
    line per problem and whose ``errors`` hold the same as :class:`FieldError`.
    """
    data, document = _compose(text, source)
    return _build(data, source, document.positions)


def load_flow_file(path: str | os.PathLike[str]) -> Flow:
    """A validated flow from a YAML file; messages name the file as given."""
    source = os.fspath(path)
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_FLOW_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise FlowError(
            f"{source}: cannot read the flow: {reason}", [FieldError((), reason)]
        ) from None
    if len(raw) > MAX_FLOW_BYTES:
        message = f"{source}: refused: the file is over the {MAX_FLOW_BYTES}-byte limit"
        raise FlowError(message, [FieldError((), "too large", "too_large")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"{source}: the flow is not UTF-8 text (byte {exc.start})"
        raise FlowError(message, [FieldError((), message.split(": ", 1)[1])]) from None
    return load_flow(text, source=source)
