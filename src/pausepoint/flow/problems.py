"""Problems found in a flow, and the one :class:`~pausepoint.errors.FlowError` that lists them.

Every problem is reported as ``source:line field-path: message``, sorted by
line, with field paths spelled as the author wrote them (Kestra's property
names kept, see :class:`~pausepoint.flow.normaliser.Normaliser`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pausepoint.errors import FieldError, FlowError

Path_ = tuple[str | int, ...]


@dataclass
class Problem:
    """One thing wrong with a flow, at a path of its data."""

    path: Path_
    msg: str
    line: int | None = None
    type: str = "value_error"
    also: Path_ | None = None  # another place involved, e.g. the first use of an id


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_path(path: Path_) -> str:
    """``('tasks', 2, 'pauseDuration')`` -> ``tasks[2].pauseDuration``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def user_path(path: Path_, renames: Mapping[Path_, Mapping[str, str]]) -> Path_:
    out: list[str | int] = []
    for part in path:
        renamed = renames.get(tuple(out))
        if renamed and isinstance(part, str) and part in renamed:
            part = renamed[part]
        out.append(part)
    return tuple(out)


def line_of(path: Path_, positions: Mapping[Path_, int]) -> int | None:
    for end in range(len(path), -1, -1):
        line = positions.get(path[:end])
        if line is not None:
            return line
    return None


def flow_error(
    source: str,
    problems: list[Problem],
    positions: Mapping[Path_, int],
    renames: Mapping[Path_, Mapping[str, str]],
) -> FlowError:
    lines: list[tuple[int, str, FieldError]] = []
    seen: set[tuple[Path_, str]] = set()
    for problem in problems:
        path = user_path(problem.path, renames)
        line = problem.line or line_of(path, positions)
        msg = problem.msg
        if problem.also is not None:
            also = user_path(problem.also, renames)
            also_line = line_of(also, positions)
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
