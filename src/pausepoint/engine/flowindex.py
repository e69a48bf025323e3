"""Addressing tasks inside a flow by path.

Task runs record the path of their task (``tasks[2].then[0]``) rather than a
copy of it, so a checkpoint stays small. A :class:`FlowIndex` resolves paths
in O(1) and caches each task's unrendered properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pausepoint.flow.model import Flow, TaskBase
from pausepoint.flow.templates import has_templates

# Properties the engine itself interprets; they are never handed to a leaf task.
ENGINE_PROPERTIES = frozenset(
    {
        "id",
        "type",
        "description",
        "timeout",
        "retry",
        "allowFailure",
        "allowWarning",
        "disabled",
        "runIf",
        "logToFile",
    }
)


class RetryExecutionTask(TaskBase):
    """The engine's stage that starts a new execution to retry this one (Kestra's
    CREATE_NEW_EXECUTION): a leaf, so that the start happens outside the pure engine,
    once however often it runs (it is keyed by its task run)."""

    type: Literal["retry_execution"]


RETRY_EXECUTION_PATH = "retryExecution[0]"
"""Where the flow index keeps that stage's task (no flow names it)."""


@dataclass
class FlowIndex:
    flow: Flow
    tasks: dict[str, TaskBase] = field(default_factory=dict)
    lists: dict[str, list[Any]] = field(default_factory=dict)
    _specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _templated: dict[str, bool] = field(default_factory=dict)
    _pause_ids: list[str] | None = None
    _callback_marks: dict[str, str] | None = None

    @classmethod
    def build(cls, flow: Flow) -> FlowIndex:
        index = cls(flow)
        for name, tasks in flow.blocks().items():
            index._add_list(name, tasks)
        index.tasks[RETRY_EXECUTION_PATH] = RetryExecutionTask(
            id="retry_execution", type="retry_execution"
        )
        return index

    def _add_list(self, list_path: str, tasks: list[Any]) -> None:
        self.lists[list_path] = tasks
        for position, task in enumerate(tasks):
            task_path = f"{list_path}[{position}]"
            self.tasks[task_path] = task
            for name, children in task.blocks().items():
                self._add_list(f"{task_path}.{name}", children)

    def task(self, path: str) -> TaskBase:
        return self.tasks[path]

    def pause_task_ids(self) -> list[str]:
        """The ids of the flow's Pause tasks (callbacks name them)."""
        if self._pause_ids is None:
            self._pause_ids = sorted({t.id for t in self.tasks.values() if t.type == "pause"})
        return self._pause_ids

    def callback_marks(self, mark: str) -> dict[str, str]:
        """``callbacks.<pause task id>`` as templates read it: built once per flow, since
        every render of a task's variables offers it (callers hand templates a copy)."""
        if self._callback_marks is None:
            self._callback_marks = {
                task_id: mark.format(task=task_id) for task_id in self.pause_task_ids()
            }
        return self._callback_marks

    def pause_task(self, task_id: str) -> TaskBase | None:
        """The Pause task called ``task_id``, if the flow has one."""
        return next((t for t in self.tasks.values() if t.type == "pause" and t.id == task_id), None)

    def task_list(self, path: str) -> list[Any]:
        return self.lists[path]

    def leaf_spec(self, path: str) -> dict[str, Any]:
        """The task's own properties as written in YAML, unrendered."""
        spec = self._specs.get(path)
        if spec is None:
            task = self.tasks[path]
            spec = {
                key: value
                for key, value in task.model_dump(
                    mode="json", by_alias=True, exclude_none=True
                ).items()
                if key not in ENGINE_PROPERTIES and key not in task.ENGINE_ONLY
            }
            self._specs[path] = spec
        return spec

    def leaf_spec_has_templates(self, path: str) -> bool:
        """Whether rendering the task's properties needs the execution's variables."""
        templated = self._templated.get(path)
        if templated is None:
            templated = self._templated[path] = has_templates(self.leaf_spec(path))
        return templated
