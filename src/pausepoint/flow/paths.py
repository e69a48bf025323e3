"""Task paths: the address of a task inside a flow.

A path names the block and position of each step from the flow down:
``tasks[0]``, ``errors[1]``, ``finally[1]``, ``tasks[2].then[0]``,
``tasks[2].else[1]``, ``tasks[3].cases.a[0]``, ``tasks[3].defaults[0]``,
``tasks[1].tasks[0]`` and ``tasks[0].onPause[0]`` (a Pause's ``onPause`` is a
block of one task; :func:`task_at` also accepts ``tasks[0].onPause``). Block
names come from ``blocks()`` on the models, the same source the engine's
``FlowIndex`` uses, so both always agree. A switch case key is written as is,
even when it contains dots.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from pausepoint.errors import NotFound
from pausepoint.flow.model import Flow, Task

_INDEX = re.compile(r"\[(\d+)\]")


def _walk(prefix: str, tasks: Sequence[Any]) -> Iterator[tuple[str, Task]]:
    for position, task in enumerate(tasks):
        path = f"{prefix}[{position}]"
        yield path, task
        for name, children in task.blocks().items():
            yield from _walk(f"{path}.{name}", children)


def iter_tasks(flow: Flow) -> Iterator[tuple[str, Task]]:
    """Every task in ``flow`` with its path, depth first, parents before children.

    Covers ``tasks``, ``errors`` and ``finally`` and every nested block,
    including a Pause's ``onPause`` and ``tasks``.
    """
    for name, tasks in flow.blocks().items():
        yield from _walk(name, tasks)


def task_at(flow: Flow, path: str) -> Task:
    """The task at ``path`` (see the module docstring); raises :class:`NotFound`."""
    blocks: dict[str, list[Any]] = flow.blocks()
    rest = path
    task: Task | None = None
    while True:
        name = _longest_block(blocks, rest)
        if name is None:
            raise NotFound(f"flow {flow.id!r} has no task at {path!r}: no block at {rest!r}")
        rest = rest[len(name) :]
        match = _INDEX.match(rest)
        if match is not None:
            position = int(match.group(1))
            rest = rest[match.end() :]
        elif name == "onPause":
            position = 0
        else:
            raise NotFound(
                f"flow {flow.id!r} has no task at {path!r}: expected [index] after {name!r}"
            )
        block = blocks[name]
        if position >= len(block):
            raise NotFound(
                f"flow {flow.id!r} has no task at {path!r}: {name!r} has {len(block)} task(s)"
            )
        task = block[position]
        if not rest:
            return task
        if not rest.startswith("."):
            raise NotFound(f"flow {flow.id!r} has no task at {path!r}: unexpected {rest!r}")
        rest = rest[1:]
        blocks = task.blocks()


def _longest_block(blocks: dict[str, list[Any]], rest: str) -> str | None:
    best: str | None = None
    for name in blocks:
        after = rest[len(name) : len(name) + 1]
        if (
            rest.startswith(name)
            and after in ("", "[", ".")
            and (best is None or len(name) > len(best))
        ):
            best = name
    return best


def path_of(flow: Flow, task_id: str) -> str:
    """The path of the task whose id is ``task_id``; raises :class:`NotFound`."""
    for path, task in iter_tasks(flow):
        if task.id == task_id:
            return path
    raise NotFound(f"flow {flow.id!r} has no task {task_id!r}")
