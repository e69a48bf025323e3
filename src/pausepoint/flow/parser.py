"""Loading flows: YAML text -> validated :class:`~pausepoint.flow.model.Flow`.

Every problem is reported as ``source:line field-path: message``, e.g.
``approval.yaml:14 tasks[2].pauseDuration: 'P5X' is not an ISO-8601 duration
(e.g. PT30S, PT5M, P1D)``, and all problems of a flow are reported at once in
one :class:`~pausepoint.errors.FlowError` (one line each, sorted by line).

The steps, one module each: :mod:`~pausepoint.flow.yaml_document` reads the
YAML (YAML 1.2 core schema, hostile documents refused, the line of every
path), :mod:`~pausepoint.flow.normaliser` rewrites Kestra spellings,
:mod:`~pausepoint.flow.validation` turns the models' errors into problems at
YAML paths, and :mod:`~pausepoint.flow.problems` formats them.

Kestra's core task types are accepted as aliases (see
:mod:`pausepoint.flow.aliases`); field paths in messages always use the
property names the author wrote.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pausepoint.errors import FieldError, FlowError
from pausepoint.flow.model import Flow, Task
from pausepoint.flow.normaliser import Normaliser
from pausepoint.flow.paths import iter_tasks, path_of, task_at
from pausepoint.flow.problems import Path_, Problem, flow_error, format_path, show
from pausepoint.flow.validation import pydantic_problems, template_problems
from pausepoint.flow.yaml_document import (
    MAX_FLOW_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    compose,
    load_yaml_data,
)

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


def _build(data: Any, source: str, positions: Mapping[Path_, int]) -> Flow:
    if data is None:
        raise FlowError(f"{source}: the flow is empty", [FieldError((), "the flow is empty")])
    if not isinstance(data, dict):
        msg = f"a flow must be a mapping (with id, namespace and tasks), got {type(data).__name__}"
        raise FlowError(f"{source}: {msg}", [FieldError((), msg)])
    normaliser = Normaliser()
    normalised = normaliser.flow(data)
    problems = [*normaliser.problems, *template_problems(data, ())]
    try:
        flow = Flow.model_validate(normalised)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, normalised, normaliser.bad_tasks))
    if problems:
        raise flow_error(source, problems, positions, normaliser.renames)
    return flow


def _plain(data: Any, path: Path_, depth: int, budget: list[int], problems: list[Problem]) -> Any:
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
                problems.append(Problem(path, f"key {show(key)} must be a string"))
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
    problems: list[Problem] = []
    try:
        plain = _plain(data, (), 0, [MAX_YAML_NODES], problems)
    except FlowError as exc:
        raise FlowError(f"{source}: {exc.message}", exc.errors) from None
    if problems:
        raise flow_error(source, problems, {}, {})
    return _build(plain, source, {})


def load_flow(text: str, *, source: str = "<flow>") -> Flow:
    """A validated flow from YAML ``text``; ``source`` names it in messages.

    Raises :class:`FlowError` whose message has one ``source:line path: problem``
    line per problem and whose ``errors`` hold the same as :class:`FieldError`.
    """
    data, document = compose(text, source)
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
