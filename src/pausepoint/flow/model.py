"""The flow language as validated, immutable models.

A flow is a tree: flowable tasks (`sequential`, `parallel`, `if`, `switch`,
`foreach`, `pause` with `tasks`) hold blocks of tasks; leaf tasks (`log`,
`return`, `python`, `shell`, `http`, `outputs`) do the work. Models validate
structure only; templates are rendered by the engine when a task starts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pausepoint.flow.durations import is_template, parse_duration
from pausepoint.flow.inputs import InputSpec

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"

Behavior = Literal["RESUME", "WARN", "FAIL", "CANCEL"]


def _check_duration(value: str | None) -> str | None:
    if value is None or is_template(value):
        return value
    parse_duration(value)  # raises ValueError with a clear message
    return value


class Retry(BaseModel):
    """Retry policy: ``interval * backoff ** (attempt - 1)``, capped by ``maxInterval``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["constant", "exponential"] = "constant"
    max_attempts: int = Field(default=1, ge=1, alias="maxAttempts")
    interval: str = "PT1S"
    max_interval: str | None = Field(default=None, alias="maxInterval")
    backoff: float = Field(default=2.0, ge=1.0, alias="delayFactor")

    @field_validator("interval", "max_interval")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return _check_duration(value)


class TaskBase(BaseModel):
    """Properties every task has."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=TASK_ID_PATTERN)
    type: str
    description: str | None = None
    timeout: str | None = None
    retry: Retry | None = None
    allow_failure: bool = Field(default=False, alias="allowFailure")
    disabled: bool = False

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @property
    def is_leaf(self) -> bool:
        return True

    def blocks(self) -> dict[str, list[Task]]:
        """Named child blocks (empty for leaf tasks)."""
        return {}


class LogTask(TaskBase):
    type: Literal["log"]
    message: str | list[str]
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"


class ReturnTask(TaskBase):
    type: Literal["return"]
    format: str | None = None


class OutputValuesTask(TaskBase):
    type: Literal["outputs"]
    values: dict[str, Any] = Field(default_factory=dict)


class PythonTask(TaskBase):
    type: Literal["python"]
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ShellTask(TaskBase):
    type: Literal["shell"]
    commands: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    working_directory: str | None = Field(default=None, alias="workingDirectory")
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    # Kestra's runner selection; pausepoint always runs a local process.
    runner: str | None = None


class HttpTask(TaskBase):
    type: Literal["http"]
    uri: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    content_type: str | None = Field(default=None, alias="contentType")
    allow_failed: bool = Field(
        default=False, alias="allowFailed", description="Do not fail on a 4xx/5xx status."
    )


class PauseTask(TaskBase):
    type: Literal["pause"]
    pause_duration: str | None = Field(default=None, alias="pauseDuration")
    behavior: Behavior = "RESUME"
    on_pause: Task | None = Field(default=None, alias="onPause")
    on_resume: list[InputSpec] = Field(default_factory=list, alias="onResume")
    # Kestra's deprecated spelling of pauseDuration with behavior RESUME.
    delay: str | None = None
    tasks: list[Task] = Field(default_factory=list)

    @field_validator("pause_duration", "delay")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        blocks: dict[str, list[Task]] = {"tasks": self.tasks}
        if self.on_pause is not None:
            blocks["onPause"] = [self.on_pause]
        return blocks

    @property
    def duration(self) -> str | None:
        return self.pause_duration or self.delay


class SequentialTask(TaskBase):
    type: Literal["sequential"]
    tasks: list[Task] = Field(min_length=1)

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks}


class ParallelTask(TaskBase):
    type: Literal["parallel"]
    tasks: list[Task] = Field(min_length=1)
    concurrency: int = Field(default=0, ge=0, description="0 runs every branch at once.")

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks}


class IfTask(TaskBase):
    type: Literal["if"]
    condition: str | bool
    then: list[Task] = Field(min_length=1)
    else_: list[Task] = Field(default_factory=list, alias="else")

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"then": self.then, "else": self.else_}


class SwitchTask(TaskBase):
    type: Literal["switch"]
    value: str | int | bool
    cases: dict[str, list[Task]] = Field(default_factory=dict)
    defaults: list[Task] = Field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        blocks = {f"cases.{key}": tasks for key, tasks in self.cases.items()}
        blocks["defaults"] = self.defaults
        return blocks


class ForEachTask(TaskBase):
    type: Literal["foreach"]
    values: str | list[Any]
    tasks: list[Task] = Field(min_length=1)
    concurrency: int = Field(
        default=1, ge=0, description="Iterations run at once; 0 runs every iteration at once."
    )

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks}


Task = Annotated[
    LogTask
    | ReturnTask
    | OutputValuesTask
    | PythonTask
    | ShellTask
    | HttpTask
    | PauseTask
    | SequentialTask
    | ParallelTask
    | IfTask
    | SwitchTask
    | ForEachTask,
    Field(discriminator="type"),
]

LEAF_TYPES = frozenset({"log", "return", "outputs", "python", "shell", "http"})


class Flow(BaseModel):
    """A validated flow definition."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
    namespace: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
    description: str | None = None
    revision: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    inputs: list[InputSpec] = Field(default_factory=list)
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    outputs: dict[str, Any] = Field(default_factory=dict)
    timeout: str | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        return _check_duration(value)

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks, "errors": self.errors, "finally": self.finally_}


for _model in (PauseTask, SequentialTask, ParallelTask, IfTask, SwitchTask, ForEachTask, Flow):
    _model.model_rebuild()
