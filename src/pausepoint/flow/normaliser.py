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

from pydantic import ValidationError

from pausepoint.flow.aliases import (
    NOT_YET_SUPPORTED,
    NOT_YET_SUPPORTED_FLOW_PROPERTIES,
    RETRY_RENAMES,
    SHORT_TYPES,
    TASK_BLOCKS,
    resolve_task_type,
)
from pausepoint.flow.durations import is_template
from pausepoint.flow.inputs import input_id_problems
from pausepoint.flow.model import SLA_TYPES, Retry
from pausepoint.flow.problems import Path_, Problem, show
from pausepoint.flow.triggers import (
    CONDITION_TYPE_ALIASES,
    CONDITION_TYPES,
    TRIGGER_TYPE_ALIASES,
    TRIGGER_TYPES,
)


@dataclass(frozen=True)
class PluginDefault:
    """A ``pluginDefaults`` entry: property values for the tasks whose type starts with ``type``."""

    type: str
    values: dict[str, Any]
    forced: bool

    def applies_to(self, type_name: str) -> bool:
        return type_name == self.type or type_name.startswith(self.type.rstrip(".") + ".")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; mappings present in both are merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_defaults(
    data: dict[str, Any], type_name: str, defaults: list[PluginDefault]
) -> dict[str, Any]:
    """``data`` with the defaults for ``type_name``: the task's own values win unless forced."""
    for entry in defaults:
        if entry.applies_to(type_name):
            data = _merge(data, entry.values) if entry.forced else _merge(entry.values, data)
    return data


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``edges`` (node -> the nodes it depends on) as a closed path, or None."""
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = [start]
        on_trail = {start}
        while stack:
            node, next_index = stack[-1]
            targets = edges.get(node, [])
            if next_index < len(targets):
                stack[-1] = (node, next_index + 1)
                target = targets[next_index]
                if target in on_trail:
                    return [*trail[trail.index(target) :], target]
                if target not in done:
                    stack.append((target, 0))
                    trail.append(target)
                    on_trail.add(target)
            else:
                stack.pop()
                trail.pop()
                on_trail.discard(node)
                done.add(node)
    return None


@dataclass
class Normaliser:
    """Rewrites Kestra spellings into pausepoint's, remembering what the author wrote."""

    problems: list[Problem] = field(default_factory=list)
    renames: dict[Path_, dict[str, str]] = field(default_factory=dict)
    bad_tasks: set[Path_] = field(default_factory=set)
    task_ids: dict[str, Path_] = field(default_factory=dict)
    plugin_defaults: list[PluginDefault] = field(default_factory=list)
    flow_retry: Any = None  # Kestra's flow-level retry: every task's, unless it has its own

    def flow(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for key, what in NOT_YET_SUPPORTED_FLOW_PROPERTIES.items():
            if key in out:
                out.pop(key)
                msg = f"Kestra's {key} ({what}) is not supported yet"
                self.problems.append(Problem((key,), msg, type="not_supported"))
        for key in ("pluginDefaults", "taskDefaults"):
            if key in out:
                self.plugin_defaults.extend(self.defaults(out.pop(key), (key,)))
        if isinstance(out.get("labels"), list):
            out["labels"] = self.label_pairs(out["labels"], ("labels",))
        elif isinstance(out.get("labels"), dict):
            # Kestra reads a label written as a number or a boolean as its text.
            out["labels"] = {key: scalar_text(value) for key, value in out["labels"].items()}
        if "retry" in out:
            self.flow_retry = self.checked_retry(out.pop("retry"), ("retry",))
        for block in ("tasks", "errors", "finally", "afterExecution"):
            if isinstance(out.get(block), list):
                out[block] = self.tasks(out[block], (block,))
        if isinstance(out.get("triggers"), list):
            out["triggers"] = self.triggers(out["triggers"], ("triggers",))
        if isinstance(out.get("sla"), list):
            out["sla"] = self.slas(out["sla"], ("sla",))
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
        coming = NOT_YET_SUPPORTED.get(type_name)
        if coming is not None:
            msg = f"{type_name} is not supported yet (it comes with {coming})"
            self._bad((*path, "type"), msg, type="not_supported")
            return data
        alias = resolve_task_type(type_name)
        if alias is None:
            self._bad((*path, "type"), f"unknown task type {type_name!r}; known types: {known}")
            return data
        data = apply_defaults(data, type_name, self.plugin_defaults)
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
        if self.flow_retry is not None and "retry" not in out and alias.short not in TASK_BLOCKS:
            out["retry"] = self.flow_retry
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
            elif kind == "dag" and isinstance(value, list):
                out[key] = self.dag(value, (*path, key))
        return out

    def _bad(self, path: Path_, msg: str, *, type: str = "value_error") -> None:
        self.bad_tasks.add(path if path[-1] != "type" else path[:-1])
        self.problems.append(Problem(path, msg, type=type))

    def checked_retry(self, data: Any, path: Path_) -> Any:
        """Kestra's flow-level ``retry``, checked where it is written; None if it is wrong."""
        if isinstance(data, dict) and any(key in data for key in RETRY_RENAMES):
            data = {RETRY_RENAMES.get(key, key): value for key, value in data.items()}
        try:
            retry = Retry.model_validate(data)
            if retry.behavior == "RETRY_FLOWABLE":
                msg = (
                    "RETRY_FLOWABLE is a flowable task's behavior; the flow's retry is "
                    "RETRY_FAILED_TASK or CREATE_NEW_EXECUTION"
                )
                self.problems.append(Problem((*path, "behavior"), msg))
                return None
        except ValidationError as error:
            for detail in error.errors(include_url=False):
                where = (*path, *(part for part in detail["loc"] if isinstance(part, str)))
                value = detail.get("input")
                self.problems.append(Problem(where, f"{detail['msg']}, got {show(value)}"))
            return None
        return data

    def triggers(self, items: list[Any], path: Path_) -> list[Any]:
        """Kestra's trigger and condition type names -> pausepoint's; unknown ones named."""
        out: list[Any] = []
        ids: dict[str, int] = {}
        known = "io.kestra.plugin.core.trigger.Schedule, Webhook and Flow"
        for position, item in enumerate(items):
            where = (*path, position)
            if not isinstance(item, dict):
                self._bad(
                    where, f"expected a trigger (a mapping with id and type), got {show(item)}"
                )
                out.append(item)
                continue
            type_name = item.get("type")
            short = TRIGGER_TYPE_ALIASES.get(str(type_name), type_name)
            if short not in TRIGGER_TYPES:
                self._bad(
                    (*where, "type"), f"unknown trigger type {show(type_name)}; known: {known}"
                )
                out.append(item)
                continue
            item = apply_defaults(item, str(type_name), self.plugin_defaults)
            trigger_id = item.get("id")
            if isinstance(trigger_id, str):
                if trigger_id in ids:
                    msg = f"duplicate trigger id {trigger_id!r}"
                    self.problems.append(Problem((*where, "id"), msg, type="duplicate_id"))
                ids[trigger_id] = position
            item = {**item, "type": short}
            if isinstance(item.get("conditions"), list):
                item["conditions"] = self.conditions(item["conditions"], (*where, "conditions"))
            if short == "flow":
                item = self.flow_dependency(item, where)
            out.append(item)
        return out

    def flow_dependency(self, item: dict[str, Any], where: Path_) -> dict[str, Any]:
        """A ``dependsOn`` of one flow (no labels, ``when`` or ``window``) becomes plain
        conditions, judged on each execution alone; any other stays a window of
        conditions the service judges over time."""
        depends = item.get("dependsOn")
        if not isinstance(depends, list) or len(depends) != 1 or "window" in item:
            return item
        only = depends[0]
        if not isinstance(only, dict) or set(only) - {"namespace", "flowId", "states"}:
            return item
        item = dict(item)
        del item["dependsOn"]
        conditions = list(item.get("conditions") or [])
        namespace, flow_id = only.get("namespace"), only.get("flowId")
        if flow_id is not None:
            conditions.append({"type": "execution_flow", "namespace": namespace, "flowId": flow_id})
        elif namespace is not None:
            conditions.append({"type": "execution_namespace", "namespace": namespace})
        if only.get("states") is not None:
            conditions.append({"type": "execution_status", "in": only["states"]})
        item["conditions"] = conditions
        return item

    def conditions(self, items: list[Any], path: Path_) -> list[Any]:
        return [self.condition(item, (*path, position)) for position, item in enumerate(items)]

    def condition(self, item: Any, where: Path_, *, inner: bool = False) -> Any:
        """Kestra's condition type names -> pausepoint's; unknown ones named where written."""
        known = "io.kestra.plugin.core.condition.ExecutionStatus, ExecutionFlow, ExecutionNamespace"
        if not inner:
            known += " and MultipleCondition"
        type_name = item.get("type") if isinstance(item, dict) else None
        short = CONDITION_TYPE_ALIASES.get(str(type_name), type_name)
        if (
            not isinstance(item, dict)
            or short not in CONDITION_TYPES
            or (inner and short == "multiple")
        ):
            what = show(type_name) if isinstance(item, dict) else show(item)
            self._bad(
                (*where, "type") if isinstance(item, dict) else where,
                f"unknown or unsupported condition {what}; supported: {known}",
            )
            return item
        item = {**item, "type": short}
        if short == "multiple" and isinstance(item.get("conditions"), dict):
            item["conditions"] = {
                name: self.condition(value, (*where, "conditions", name), inner=True)
                for name, value in item["conditions"].items()
            }
        return item

    def dag(self, nodes: list[Any], path: Path_) -> list[Any]:
        """Normalise a Dag's ``{task, dependsOn}`` entries; unknown ids and cycles are problems."""
        out: list[Any] = []
        for position, node in enumerate(nodes):
            if isinstance(node, dict) and "task" in node:
                node = {**node, "task": self.task(node["task"], (*path, position, "task"))}
            out.append(node)
        ids = {
            node["task"].get("id"): position
            for position, node in enumerate(out)
            if isinstance(node, dict) and isinstance(node.get("task"), dict)
        }
        edges: dict[str, list[str]] = {}
        for position, node in enumerate(out):
            if not isinstance(node, dict) or not isinstance(node.get("dependsOn"), list):
                continue
            own = node["task"].get("id") if isinstance(node.get("task"), dict) else None
            for index, name in enumerate(node["dependsOn"]):
                where = (*path, position, "dependsOn", index)
                if name not in ids:
                    known = ", ".join(map(str, ids))
                    msg = f"{show(name)} is not a task of this Dag; its tasks: {known}"
                    self.problems.append(Problem(where, msg))
                elif name == own:
                    self.problems.append(Problem(where, f"task {own!r} cannot depend on itself"))
                elif isinstance(own, str):
                    edges.setdefault(own, []).append(name)
        cycle = find_cycle(edges)
        if cycle is not None:
            first = ids[cycle[0]]
            msg = f"the dependencies form a cycle: {' -> '.join(cycle)}"
            self.problems.append(Problem((*path, first, "dependsOn"), msg, type="dag_cycle"))
        return out

    def defaults(self, items: Any, path: Path_) -> list[PluginDefault]:
        if not isinstance(items, list):
            self.problems.append(
                Problem(path, f"expected a list of {{type, values}}, got {show(items)}")
            )
            return []
        found: list[PluginDefault] = []
        for position, item in enumerate(items):
            where = (*path, position)
            if not isinstance(item, dict):
                self.problems.append(Problem(where, f"expected {{type, values}}, got {show(item)}"))
                continue
            unknown = sorted(set(item) - {"type", "values", "forced"})
            for key in unknown:
                msg = f"unknown property {key!r}; known properties: forced, type, values"
                self.problems.append(Problem((*where, key), msg))
            if unknown:
                continue
            type_name, values, forced = (
                item.get("type"),
                item.get("values"),
                item.get("forced", False),
            )
            if not isinstance(type_name, str) or not type_name:
                self.problems.append(
                    Problem((*where, "type"), "a task type (or a prefix of one) is required")
                )
            elif not isinstance(values, dict):
                self.problems.append(
                    Problem((*where, "values"), f"expected a mapping, got {show(values)}")
                )
            elif not isinstance(forced, bool):
                self.problems.append(
                    Problem((*where, "forced"), f"expected a boolean, got {show(forced)}")
                )
            else:
                found.append(PluginDefault(type_name, values, forced))
        return found

    def slas(self, items: list[Any], path: Path_) -> list[Any]:
        """Kestra's ``sla`` entries: a known ``type`` each, labels as a mapping of text."""
        out: list[Any] = []
        for position, item in enumerate(items):
            where = (*path, position)
            if not isinstance(item, dict):
                out.append(item)  # the model says what it expected
                continue
            item = dict(item)
            kind = item.get("type")
            if kind is None:
                msg = f"required property is missing; expected one of {', '.join(SLA_TYPES)}"
                self.problems.append(Problem((*where, "type"), msg))
            elif kind not in SLA_TYPES:
                msg = f"unknown sla type {show(kind)}; expected one of {', '.join(SLA_TYPES)}"
                self.problems.append(Problem((*where, "type"), msg))
            if isinstance(item.get("labels"), list):
                item["labels"] = self.label_pairs(item["labels"], (*where, "labels"))
            if isinstance(item.get("labels"), dict):
                item["labels"] = {str(k): scalar_text(v) for k, v in item["labels"].items()}
            out.append(item)
        return out

    def label_pairs(self, items: list[Any], path: Path_) -> dict[str, Any]:
        """Kestra's ``[{key, value}]`` labels as a mapping."""
        labels: dict[str, Any] = {}
        for position, item in enumerate(items):
            if not isinstance(item, dict) or set(item) != {"key", "value"}:
                self.problems.append(
                    Problem((*path, position), f"expected {{key, value}}, got {show(item)}")
                )
            elif item["key"] in labels:
                self.problems.append(
                    Problem((*path, position, "key"), f"duplicate label {item['key']!r}")
                )
            else:
                labels[str(item["key"])] = item["value"]
        return labels

    def _task_checks(self, task: dict[str, Any], path: Path_) -> None:
        if isinstance(task.get("id"), int) and not isinstance(task.get("id"), bool):
            task["id"] = str(task["id"])  # Kestra's first flows number their tasks: `id: 1`
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
        elif kind == "approval" and isinstance(task.get("inputs"), list):
            self.inputs(task["inputs"], (*path, "inputs"))
        elif kind == "shell" and isinstance(task.get("commands"), str):
            task["commands"] = [task["commands"]]  # Kestra's Script: one script
        elif kind == "switch":
            if "defaults" in task and task["defaults"] is None:
                del task["defaults"]  # `defaults: null`: no defaults, as Kestra reads it
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
        for position, item in enumerate(items):
            # Kestra's older flows name an input with ``name``, not ``id``.
            if isinstance(item, dict) and "name" in item and "id" not in item:
                items[position] = {
                    "id": item["name"],
                    **{k: v for k, v in item.items() if k != "name"},
                }
                self.renames.setdefault((*path, position), {})["id"] = "name"
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        for position, msg in input_id_problems(ids):
            self.problems.append(Problem((*path, position, "id"), msg))


def scalar_text(value: Any) -> Any:
    """A number or a boolean as Kestra writes it as text; anything else unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value
