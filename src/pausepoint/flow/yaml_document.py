"""YAML text -> plain data, with the line of every field path.

YAML is read with YAML 1.2 core-schema rules, as Kestra reads it: only
``true``/``false`` are booleans (``yes``, ``on`` stay strings), ``010`` is
ten, and dates and ``10:30`` stay strings. Hostile documents are refused
before they cost much: over :data:`MAX_FLOW_BYTES`, several documents, more
than :data:`MAX_YAML_NODES` nodes once aliases are expanded, or nesting deeper
than :data:`MAX_YAML_DEPTH`. Mapping keys must be strings and appear once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pausepoint.errors import FieldError, FlowError
from pausepoint.flow.problems import Path_, Problem, flow_error, show

MAX_FLOW_BYTES = 1024 * 1024
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 100

_KEY_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:bool"})
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


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
class Document:
    """Plain data built from YAML nodes, with the line of every path."""

    positions: dict[Path_, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
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
        self.problems.append(Problem(path, f"unsupported YAML tag {node.tag!r}", line))
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
            self.problems.append(Problem(path, msg, _line(node)))
            return None
        self.problems.append(Problem(path, f"unsupported YAML tag {tag!r}", _line(node)))
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
            # A number or boolean key is read as written (Kestra's `cases: {1: …}`).
            if not (isinstance(key_node, ScalarNode) and key_node.tag in _KEY_TAGS):
                if isinstance(key_node, ScalarNode):
                    msg = f"key {show(key_node.value)} must be a string (quote it)"
                else:
                    msg = "keys must be strings, not collections"
                self.problems.append(Problem(path, msg, _line(key_node)))
                continue
            key: str = key_node.value
            if key in result:
                if not from_merge:
                    first = self.positions.get((*path, key))
                    msg = f"duplicate key {key!r} (first at line {first})"
                    self.problems.append(Problem((*path, key), msg, _line(key_node)))
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


def compose(text: str, source: str) -> tuple[Any, Document]:
    size = len(text) if len(text) > MAX_FLOW_BYTES else len(text.encode("utf-8", "replace"))
    if size > MAX_FLOW_BYTES:
        message = f"{source}: refused: {size} bytes is over the {MAX_FLOW_BYTES}-byte limit"
        raise FlowError(message, [FieldError((), message.split(": ", 1)[1], "too_large")])
    document = Document()
    try:
        node = _compose_node(text)
        data = document.build(node, (), 0) if node is not None else None
    except yaml.YAMLError as exc:
        raise _yaml_error(source, text, exc) from None
    if document.problems:
        raise flow_error(source, document.problems, document.positions, {})
    return data, document


def load_yaml_data(text: str, *, source: str = "<yaml>") -> Any:
    """Plain data (dicts, lists, scalars) from one YAML document, with the flow limits.

    Raises :class:`FlowError` for malformed or refused YAML.
    """
    return compose(text, source)[0]
