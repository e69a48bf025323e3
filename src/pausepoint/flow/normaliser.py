"""Kestra spellings -> pausepoint's, and the structural checks no model can make.

Task types are resolved through :mod:`pausepoint.flow.aliases` and renamed
properties are remembered, so that messages name what the author wrote.
Duplicate task ids, duplicate or clashing input ids and contradictory
properties are found here, before the models validate the flow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pausepoint.flow.aliases import RETRY_RENAMES, SHORT_TYPES, TASK_BLOCKS, resolve_task_type
from pausepoint.flow.durations import is_template
from pausepoint.flow.inputs import input_id_problems
from pausepoint.flow.problems import Path_, Problem, show


@dataclass
class Normaliser:
    """Rewrites Kestra spellings into pausepoint's, remembering what the author wrote."""

    problems: list[Problem] = field(default_factory=list)
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
            self._bad(path, f"expected a task (a mapping with id and type), got {show(data)}")
            return data
        type_name = data.get("type")
        known = ", ".join(SHORT_TYPES)
        if not isinstance(type_name, str):
            what = "has no 'type'" if type_name is None else f"has type {show(type_name)}"
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
                        Problem((*path, key), f"give {key!r} or {new!r}, not both")
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
        self.problems.append(Problem(path, msg))

    def _task_checks(self, task: dict[str, Any], path: Path_) -> None:
        task_id = task.get("id")
        if isinstance(task_id, str):
            first = self.task_ids.get(task_id)
            if first is not None:
                msg = f"duplicate task id {task_id!r}"
                self.problems.append(Problem((*path, "id"), msg, type="duplicate_id", also=first))
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
                    Problem((*path, "delay"), "give pauseDuration or delay (deprecated), not both")
                )
            if isinstance(task.get("onResume"), list):
                self.inputs(task["onResume"], (*path, "onResume"))
        elif kind == "switch":
            if not task.get("cases") and not task.get("defaults"):
                self.problems.append(Problem(path, "a switch needs 'cases' or 'defaults'"))
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
                        Problem(
                            (*path, "values"),
                            "values must be a list, a JSON array or a {{ … }} template",
                        )
                    )

    def inputs(self, items: list[Any], path: Path_) -> None:
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        for position, msg in input_id_problems(ids):
            self.problems.append(Problem((*path, position, "id"), msg))
