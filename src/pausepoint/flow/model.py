"""The flow language as validated, immutable models.

A flow is a tree: flowable tasks (`sequential`, `parallel`, `if`, `switch`,
`foreach`, `pause` with `tasks`) hold blocks of tasks; leaf tasks (`log`,
`return`, `python`, `shell`, `http`, `outputs`) do the work; an `agent` runs an
LLM loop whose model calls and tool calls are leaf runs of their own. Models validate
structure only; templates are rendered by the engine when a task starts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pausepoint.flow.durations import is_template, parse_duration
from pausepoint.flow.inputs import InputSpec
from pausepoint.flow.triggers import Trigger

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"

Behavior = Literal["RESUME", "WARN", "FAIL", "CANCEL"]


def _check_duration(value: str | None) -> str | None:
    if value is None or is_template(value):
        return value
    parse_duration(value)  # raises ValueError with a clear message
    return value


RetryBehavior = Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION", "RETRY_FLOWABLE"]
# Kestra's first names of the behaviors (its AbstractRetry.Behavior before 0.16).
RETRY_BEHAVIOR_ALIASES = {
    "RETRY_FAILED": "RETRY_FAILED_TASK",
    "NEW_EXECUTION": "CREATE_NEW_EXECUTION",
}


class Retry(BaseModel):
    """Retry policy: ``interval * backoff ** (attempt - 1)``, capped by ``maxInterval``.

    ``random`` waits between ``minInterval`` and ``maxInterval`` (the engine draws
    the delay from the run's id and attempt, so a replay waits the same).
    ``maxDuration`` stops retrying once that long has passed since the first
    attempt started; without ``maxAttempts`` it is the only limit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["constant", "exponential", "random"] = "constant"
    max_attempts: int | None = Field(default=None, ge=1, alias="maxAttempts")
    max_duration: str | None = Field(default=None, alias="maxDuration")
    interval: str = "PT1S"
    min_interval: str | None = Field(default=None, alias="minInterval")
    max_interval: str | None = Field(default=None, alias="maxInterval")
    backoff: float = Field(default=2.0, ge=1.0, alias="delayFactor")
    warning_on_retry: bool = Field(default=False, alias="warningOnRetry")
    behavior: RetryBehavior = Field(
        default="RETRY_FAILED_TASK",
        description="RETRY_FAILED_TASK reruns the failed task; CREATE_NEW_EXECUTION starts a "
        "new execution of the flow; RETRY_FLOWABLE (a flowable task's) reruns the whole task.",
    )

    @field_validator("behavior", mode="before")
    @classmethod
    def _behavior(cls, value: Any) -> Any:
        if isinstance(value, str) and value in RETRY_BEHAVIOR_ALIASES:
            return RETRY_BEHAVIOR_ALIASES[value]
        if value in ("RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION", "RETRY_FLOWABLE"):
            return value
        raise ValueError(
            f"{value!r} is not allowed; expected 'RETRY_FAILED_TASK', 'CREATE_NEW_EXECUTION' "
            "or 'RETRY_FLOWABLE' (Kestra's older 'RETRY_FAILED' and 'NEW_EXECUTION' too)"
        )

    @field_validator("interval", "max_interval", "min_interval", "max_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @model_validator(mode="after")
    def _bounded(self) -> Retry:
        if self.type == "random" and (self.min_interval is None or self.max_interval is None):
            raise ValueError("a random retry needs minInterval and maxInterval")
        return self

    @property
    def attempts(self) -> int | None:
        """The most attempts allowed; None when only ``maxDuration`` bounds them."""
        if self.max_attempts is None and self.max_duration is None:
            return 1
        return self.max_attempts


class TaskBase(BaseModel):
    """Properties every task has."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=TASK_ID_PATTERN)
    type: str
    description: str | None = None
    timeout: str | None = None
    retry: Retry | None = None
    allow_failure: bool = Field(default=False, alias="allowFailure")
    allow_warning: bool = Field(
        default=False, alias="allowWarning", description="A WARNING ends this task as SUCCESS."
    )
    disabled: bool = False
    log_to_file: bool = Field(
        default=False,
        alias="logToFile",
        description="A leaf's log lines go to a stored file per attempt (its task run's "
        "log_file), not to the execution's events.",
    )
    run_if: str | bool | None = Field(
        default=None,
        alias="runIf",
        validation_alias=AliasChoices("runIf", "when"),
        description="Skip the task unless this renders truthy (Kestra's newer name: when).",
    )

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @model_validator(mode="after")
    def _retry_fits(self) -> TaskBase:
        if (
            self.retry is not None
            and self.retry.behavior == "RETRY_FLOWABLE"
            and not isinstance(self, FlowableBase)
        ):
            raise ValueError(
                "retry: behavior RETRY_FLOWABLE reruns a flowable task (Sequential, "
                f"AllowFailure, ForEach, …) when one of its tasks failed; {self.id!r} is not one "
                "(use RETRY_FAILED_TASK)"
            )
        return self

    # Properties the engine reads itself: left out of the spec handed to the leaf.
    ENGINE_ONLY: ClassVar[frozenset[str]] = frozenset()

    @property
    def is_leaf(self) -> bool:
        return True

    @property
    def runs_in_engine(self) -> bool:
        """Done by the engine itself in the step that starts it (no leaf run, no I/O)."""
        return False

    def blocks(self) -> dict[str, list[Task]]:
        """Named child blocks (empty for leaf tasks)."""
        return {}


class FlowableBase(TaskBase):
    """A task holding other tasks: Kestra's local ``errors`` and ``finally`` blocks.

    ``errors`` run when one of its tasks failed (it still ends FAILED, or WARNING
    with ``allowFailure``); ``finally`` runs after its tasks (and ``errors``)
    whatever happened.
    """

    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    @property
    def is_leaf(self) -> bool:
        return False

    def handlers(self) -> dict[str, list[Task]]:
        blocks: dict[str, list[Task]] = {}
        if self.errors:
            blocks["errors"] = self.errors
        if self.finally_:
            blocks["finally"] = self.finally_
        return blocks


def _number_as_text(value: Any) -> Any:
    """Kestra reads a number written where text goes as its text (``format: 1`` is "1")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_number_as_text)]

_CHILD_FAILURE_SPELLINGS = {"FAILED": "FAIL", "CANCELLED": "CANCEL", "CANCELED": "CANCEL"}


def _child_failure_value(value: Any) -> Any:
    """Kestra reads these in any case, and its flows spell FAIL and CANCEL both ways."""
    if not isinstance(value, str):
        return value
    upper = value.strip().upper()
    return _CHILD_FAILURE_SPELLINGS.get(upper, upper)


OnChildFailure = Annotated[
    Literal["CONTINUE", "FAIL", "CANCEL"], BeforeValidator(_child_failure_value)
]
"""What a Parallel or Dag does with its other running tasks when one fails: CONTINUE lets
them finish (nothing new starts); FAIL and CANCEL interrupt them, ending them FAILED or
CANCELLED."""

ChildFailurePolicy = Annotated[Literal["STOP", "CONTINUE"], BeforeValidator(_child_failure_value)]
"""What a ForEach does after an iteration failed: STOP starts no other iteration, CONTINUE
starts the rest; either way the running ones finish and the ForEach fails."""


class LogTask(TaskBase):
    type: Literal["log"]
    message: Text | list[Text]
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"


class ReturnTask(TaskBase):
    type: Literal["return"]
    format: Text | None = None
    as_text: bool = Field(
        default=False,
        alias="asText",
        description="The value is text, as Kestra's Return's is (its type sets it).",
    )


class OutputValuesTask(TaskBase):
    type: Literal["outputs"]
    values: dict[str, Any] = Field(default_factory=dict)
    as_text: bool = Field(
        default=False,
        alias="asText",
        description="Templates render to text, as Kestra's OutputValues does (its type sets it).",
    )


class PythonTask(TaskBase):
    type: Literal["python"]
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    kwargs: dict[str, Any] = Field(default_factory=dict)


PROCESS_RUNNERS = (
    "io.kestra.plugin.core.runner.Process",
    "io.kestra.core.models.tasks.runners.types.ProcessTaskRunner",
)


class TaskRunner(BaseModel):
    """Kestra's ``taskRunner``: pausepoint runs local processes, Kestra's ``Process`` runner."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str

    @field_validator("type")
    @classmethod
    def _process(cls, value: str) -> str:
        if value not in PROCESS_RUNNERS:
            raise ValueError(
                f"{value} is not supported: pausepoint runs shell tasks as local processes "
                f"(use {PROCESS_RUNNERS[0]})"
            )
        return value


class ShellTask(TaskBase):
    """Commands run one after another in local processes.

    Kestra's script properties: ``beforeCommands`` run first; ``inputFiles``
    (name -> content) are written to the task's directory, and ``outputFiles``
    (glob patterns) name the files whose paths become ``outputs.<id>.outputFiles``.
    """

    type: Literal["shell"]
    commands: list[str] = Field(min_length=1)
    before_commands: list[str] = Field(default_factory=list, alias="beforeCommands")
    env: dict[str, str] = Field(default_factory=dict)
    working_directory: str | None = Field(default=None, alias="workingDirectory")
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    input_files: dict[str, str] = Field(default_factory=dict, alias="inputFiles")
    output_files: list[str] = Field(default_factory=list, alias="outputFiles")
    task_runner: TaskRunner | None = Field(default=None, alias="taskRunner")
    container_image: str | None = Field(
        default=None, alias="containerImage", description="Only with the Process runner."
    )
    # Kestra's older runner selection: PROCESS is what pausepoint does.
    runner: Literal["PROCESS"] | None = None

    @field_validator("input_files")
    @classmethod
    def _relative(cls, files: dict[str, str]) -> dict[str, str]:
        return relative_names(files)

    @model_validator(mode="after")
    def _local(self) -> ShellTask:
        if self.container_image is not None and self.task_runner is None:
            raise ValueError(
                "containerImage: pausepoint runs shell tasks as local processes; "
                f"set taskRunner type {PROCESS_RUNNERS[0]} (Kestra then ignores the image too)"
            )
        return self


def relative_names(files: dict[str, str]) -> dict[str, str]:
    """``files`` if every name is a relative path that stays inside its directory."""
    for name in files:
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or ".." in parts or not name.strip():
            raise ValueError(f"{name!r} must be a relative path that stays inside the directory")
    return files


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


class PauseTask(FlowableBase):
    type: Literal["pause"]
    pause_duration: str | None = Field(default=None, alias="pauseDuration")
    behavior: Behavior | str = Field(
        default="RESUME", description="RESUME, WARN, FAIL or CANCEL, or a {{ … }} template."
    )
    on_pause: Task | None = Field(default=None, alias="onPause")
    on_resume: list[InputSpec] = Field(default_factory=list, alias="onResume")
    # Kestra's deprecated spelling of pauseDuration with behavior RESUME.
    delay: str | None = None
    tasks: list[Task] = Field(default_factory=list)
    heartbeat_timeout: str | None = Field(
        default=None,
        alias="heartbeatTimeout",
        description="Fail the pause when no callback heartbeat comes within this long.",
    )

    @field_validator("behavior")
    @classmethod
    def _behavior(cls, value: str) -> str:
        if value in ("RESUME", "WARN", "FAIL", "CANCEL") or is_template(value):
            return value
        raise ValueError(
            f"{value!r} is not allowed; expected 'RESUME', 'WARN', 'FAIL', 'CANCEL' "
            "or a {{ … }} template"
        )

    @field_validator("pause_duration", "delay", "heartbeat_timeout")
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
        return {**blocks, **self.handlers()}

    @property
    def duration(self) -> str | None:
        return self.pause_duration or self.delay


class SequentialTask(FlowableBase):
    type: Literal["sequential"]
    tasks: list[Task] = Field(min_length=1)

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks, **self.handlers()}


class ParallelTask(FlowableBase):
    type: Literal["parallel"]
    tasks: list[Task] = Field(min_length=1)
    concurrency: int = Field(default=0, ge=0, description="0 runs every branch at once.")
    on_child_failure: OnChildFailure = Field(default="CONTINUE", alias="onChildFailure")
    fail_fast: bool = Field(
        default=False,
        alias="failFast",
        description="Kestra's earlier spelling of onChildFailure CANCEL (when that is CONTINUE).",
    )

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks, **self.handlers()}


class IfTask(FlowableBase):
    type: Literal["if"]
    condition: str | bool
    then: list[Task] = Field(min_length=1)
    else_: list[Task] = Field(default_factory=list, alias="else")

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"then": self.then, "else": self.else_, **self.handlers()}


class SwitchTask(FlowableBase):
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
        return {**blocks, **self.handlers()}


class ForEachTask(FlowableBase):
    type: Literal["foreach"]
    values: str | list[Any]
    tasks: list[Task] = Field(min_length=1)
    concurrency: int = Field(
        default=1, ge=0, description="Iterations run at once; 0 runs every iteration at once."
    )
    child_failure_policy: ChildFailurePolicy = Field(default="STOP", alias="childFailurePolicy")
    fail_fast: bool = Field(
        default=False,
        alias="failFast",
        description="When an iteration fails, cancel the iterations still running.",
    )
    deduplicate: bool = Field(
        default=False, description="Run one iteration per distinct value (Kestra's default)."
    )

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks, **self.handlers()}


class LoopTask(FlowableBase):
    """Kestra's Loop: ``tasks`` once per value, each iteration on its own.

    ``values`` is a list, a JSON array or a mapping (each entry an iteration,
    ``item.key`` its key). The tasks of an iteration read ``item.value``,
    ``item.index`` (``item.parent``/``parents`` for loops above) and each other's
    outputs as ``outputs.<id>``. ``concurrencyLimit`` iterations run at once
    (0: all). With ``transmitFailed`` (the default) a failed iteration fails the
    loop and no other starts; without it every iteration runs and the loop
    succeeds. Outputs: ``iterationCount``, ``runningIterations``,
    ``terminatedIterations`` (iterations per end state) and, with ``outputs``
    declared, ``outputs``: one ``{item, outputs}`` per iteration, in order.
    """

    type: Literal["loop"]
    values: str | list[Any] | dict[str, Any]
    tasks: list[Task] = Field(min_length=1)
    concurrency: int = Field(default=0, ge=0, alias="concurrencyLimit")
    transmit_failed: bool = Field(default=True, alias="transmitFailed")
    outputs: list[FlowOutput] = Field(default_factory=list)
    fetch_type: Literal["AUTO", "FETCH", "STORE"] = Field(
        default="AUTO",
        alias="fetchType",
        description="STORE keeps each iteration's outputs as a stored file (AUTO: when the "
        "values come from a stored file).",
    )

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks, **self.handlers(), **self.stages()}

    def stages(self) -> dict[str, list[Task]]:
        """The leaf runs that do a Loop's storage I/O, which the engine cannot: ``values``
        reads the values of a stored file (when ``values`` renders to its URI), ``store``
        keeps each iteration's outputs as a stored file (fetchType STORE)."""
        stages: dict[str, list[TaskBase]] = {}
        if isinstance(self.values, str):
            stages["values"] = [
                LoopValuesTask(id=f"{self.id}_values", type="loop_values", values=self.values)
            ]
        if self.outputs and self.fetch_type != "FETCH":
            stages["store"] = [LoopStoreTask(id=f"{self.id}_store", type="loop_store")]
        return cast("dict[str, list[Task]]", stages)

    def stores_outputs(self, values_were_stored: bool) -> bool:
        """Whether iterations' outputs are kept as files: STORE, or AUTO over a stored file."""
        if not self.outputs:
            return False
        return self.fetch_type == "STORE" or (self.fetch_type == "AUTO" and values_were_stored)


class LoopValuesTask(TaskBase):
    """A Loop's first stage (``<id>_values``) when its ``values`` render to a stored
    file's URI: the file's values (a JSON array's elements, or its lines)."""

    type: Literal["loop_values"]
    values: str


class LoopStoreTask(TaskBase):
    """A Loop's last stage (``<id>_store``) with fetchType STORE: each iteration's
    outputs written to a stored JSON file, whose URI replaces them."""

    type: Literal["loop_store"]


class FailTask(TaskBase):
    """Fail the task (and so the execution) when ``condition`` renders truthy, or always."""

    type: Literal["fail"]
    condition: str | bool | None = None
    error_message: str = Field(default="Task failure", alias="errorMessage")

    @property
    def runs_in_engine(self) -> bool:
        return True


class AssertTask(TaskBase):
    """Fail unless every one of ``conditions`` renders truthy (the message names the others)."""

    type: Literal["assert"]
    conditions: list[str | bool] = Field(min_length=1)
    error_message: str | None = Field(default=None, alias="errorMessage")

    @property
    def runs_in_engine(self) -> bool:
        return True


ExitState = Literal["SUCCESS", "WARNING", "KILLED", "FAILED", "CANCELED"]
EXIT_STATES: tuple[str, ...] = ("SUCCESS", "WARNING", "KILLED", "FAILED", "CANCELED", "CANCELLED")


class ExitTask(TaskBase):
    """End the execution now in ``state``; ``KILLED`` also kills what is still running."""

    type: Literal["exit"]
    state: str = "SUCCESS"

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        if not is_template(value) and value not in EXIT_STATES:
            raise ValueError(f"{value!r} is not an exit state; expected one of {EXIT_STATES}")
        return value

    @property
    def runs_in_engine(self) -> bool:
        return True


class SleepTask(TaskBase):
    """Wait ``duration`` on a durable timer: restarts and pauses do not lose it."""

    type: Literal["sleep"]
    duration: str

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        _check_duration(value)
        return value

    @property
    def runs_in_engine(self) -> bool:
        return True


class SetVariablesTask(TaskBase):
    """Set flow variables while the execution runs (``vars.<name>`` reads them next)."""

    type: Literal["set_variables"]
    variables: dict[str, Any]
    overwrite: bool = Field(default=True, description="Replace a variable that has a value.")

    @property
    def runs_in_engine(self) -> bool:
        return True


class UnsetVariablesTask(TaskBase):
    """Remove flow variables while the execution runs."""

    type: Literal["unset_variables"]
    variables: list[str]

    @property
    def runs_in_engine(self) -> bool:
        return True


class LabelsTask(TaskBase):
    """Add or change the execution's labels while it runs (a mapping or key/value pairs)."""

    type: Literal["labels"]
    labels: dict[str, Any] | list[dict[str, Any]] | str

    @property
    def runs_in_engine(self) -> bool:
        return True


class ResumeTask(TaskBase):
    """Resume another paused execution, as the API would, with ``inputs`` for its Pause task."""

    type: Literal["resume"]
    execution_id: str = Field(alias="executionId")
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    inputs: dict[str, Any] = Field(default_factory=dict)


class ToggleTriggerTask(TaskBase):
    """Kestra's trigger Toggle: pause (``enabled: false``) or resume (``true``) a trigger of
    a flow of its organization, as the API would; without ``enabled``, flip it."""

    type: Literal["toggle_trigger"]
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    trigger: str = Field(min_length=1)
    enabled: bool | str | None = None


class ChildFlow(TaskBase):
    """What a task that starts executions of another flow says of them (Subflow,
    ForEachItem): which flow, with what, and what their ends do to the task."""

    namespace: str
    flow_id: str = Field(alias="flowId")
    revision: int | str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] | list[dict[str, Any]] = Field(default_factory=dict)
    wait: bool = True
    transmit_failed: bool = Field(default=True, alias="transmitFailed")
    inherit_labels: bool = Field(default=False, alias="inheritLabels")


class SubflowTask(ChildFlow):
    """Start an execution of another flow as a child of this task run, and wait for its end.

    The child is a whole execution (its own id, events, pause points), linked to
    this run; its id derives from this run, so a retry or a restart never starts
    a second one. With ``wait`` (the default) the task ends with the child:
    SUCCESS when it completed, and, with ``transmitFailed`` (the default),
    FAILED when it failed, was cancelled, terminated or timed out. Its outputs
    are ``executionId``, ``state`` and ``outputs`` (the child's flow outputs).
    """

    type: Literal["subflow"]
    outputs: dict[str, Any] | None = Field(
        default=None,
        description="Kestra's deprecated outputs: templates rendered in the child execution.",
    )

    # Read by the engine when the child ends, never rendered before the child runs.
    ENGINE_ONLY: ClassVar[frozenset[str]] = frozenset({"outputs"})


class ItemBatches(BaseModel):
    """How ForEachItem cuts its items into batches: by ``rows`` (default 1 per batch),
    by ``bytes`` (``"10KB"``) or into ``partitions``; items end at ``separator``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    rows: int | str | None = None
    bytes: str | None = None
    partitions: int | str | None = None
    separator: str = Field(default="\n", min_length=1)

    @model_validator(mode="after")
    def _one_way(self) -> ItemBatches:
        chosen = [name for name in ("rows", "bytes", "partitions") if getattr(self, name)]
        if len(chosen) > 1:
            raise ValueError(f"batch: choose one of rows, bytes, partitions, not {chosen}")
        return self


class ItemsSplitTask(TaskBase):
    """ForEachItem's first stage (``<id>_split``): cut the stored items into batch files."""

    type: Literal["items_split"]
    items: str
    batch: ItemBatches


class ItemBatchTask(SubflowTask):
    """ForEachItem's subflow for one batch (``<id>_batch``): sees ``taskrun.items`` (the
    batch file's URI) and ``taskrun.iteration`` (its position, from 0)."""

    type: Literal["items_batch"]  # type: ignore[assignment]


class ItemBatchesTask(FlowableBase):
    """ForEachItem's second stage (``<id>_items``): one subflow per batch.

    Its outputs: ``numberOfBatches`` and ``iterations`` (how many subflows ended
    in each state, in Kestra's names).
    """

    type: Literal["items_batches"]
    tasks: list[ItemBatchTask] = Field(min_length=1, max_length=1)
    concurrency: int = Field(default=0, ge=0)

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": cast("list[Task]", list(self.tasks))}


class ItemsMergeTask(TaskBase):
    """ForEachItem's last stage (``<id>_merge``): the subflows' outputs, one JSON line
    each, in one stored file (``subflowOutputs``)."""

    type: Literal["items_merge"]


# The properties every task has: a ForEachItem's batch subflow does not inherit them.
_OWN = frozenset(TaskBase.model_fields)


class ForEachItemTask(ChildFlow, FlowableBase):
    """Kestra's ForEachItem: a subflow per batch of the items stored at ``items``.

    It runs as three stages of its own: ``<id>_split`` cuts the items into batch
    files, ``<id>_items`` starts a subflow per batch (``concurrencyLimit`` at once,
    0 = all) with ``taskrun.items`` naming the batch file, and ``<id>_merge``
    gathers the subflows' outputs into one file.
    """

    type: Literal["foreach_item"]
    items: str
    batch: ItemBatches = Field(default_factory=ItemBatches)
    concurrency_limit: int = Field(
        default=0, ge=0, alias="concurrencyLimit", description="Subflows at once; 0: all."
    )
    restart_behavior: Literal["RETRY_FAILED"] = Field(
        default="RETRY_FAILED",
        alias="restartBehavior",
        description="Kestra's NEW_EXECUTION is not supported.",
    )

    def stages(self) -> list[Task]:
        batch = ItemBatchTask(
            id=f"{self.id}_batch",
            type="items_batch",
            **{name: getattr(self, name) for name in ChildFlow.model_fields if name not in _OWN},
        )
        stages: list[TaskBase] = [
            ItemsSplitTask(
                id=f"{self.id}_split", type="items_split", items=self.items, batch=self.batch
            ),
            ItemBatchesTask(
                id=f"{self.id}_items",
                type="items_batches",
                tasks=[batch],
                concurrency=self.concurrency_limit,
            ),
            ItemsMergeTask(id=f"{self.id}_merge", type="items_merge"),
        ]
        return cast("list[Task]", stages)

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.stages(), **self.handlers()}


class AllowFailureTask(FlowableBase):
    """Run ``tasks`` in order; if one fails, this ends in WARNING and the flow goes on."""

    type: Literal["allow_failure"]
    tasks: list[Task] = Field(min_length=1)
    allow_failure: bool = Field(default=True, alias="allowFailure")

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks, **self.handlers()}


class WorkingDirectoryTask(FlowableBase):
    """Run ``tasks`` in order in one scratch directory that their shell tasks share.

    ``inputFiles`` (name -> content) are written there before the first task.
    Once the tasks succeeded, the files matching ``outputFiles`` (globs) are
    stored by a last leaf stage, ``<id>_outputFiles`` (the engine does no I/O),
    and the WorkingDirectory outputs ``outputFiles`` (relative name -> URI).
    """

    type: Literal["working_directory"]
    tasks: list[Task] = Field(min_length=1)
    input_files: dict[str, str] = Field(default_factory=dict, alias="inputFiles")
    output_files: list[str] = Field(default_factory=list, alias="outputFiles")

    @field_validator("input_files")
    @classmethod
    def _relative(cls, files: dict[str, str]) -> dict[str, str]:
        return relative_names(files)

    @field_validator("output_files")
    @classmethod
    def _inside(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if pattern.startswith("/") or ".." in pattern.split("/"):
                raise ValueError(f"{pattern!r} must stay inside the working directory")
        return patterns

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks, **self.handlers(), **self.stages()}

    def stages(self) -> dict[str, list[Task]]:
        """``outputs``: the LocalFiles leaf storing the files ``outputFiles`` names."""
        if not self.output_files:
            return {}
        store = LocalFilesTask(
            id=f"{self.id}_outputFiles", type="local_files", outputs=self.output_files
        )
        return cast("dict[str, list[Task]]", {"outputs": [store]})


KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"
KV_TYPES = ("STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


def _one_of(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is None or is_template(value) or value.upper() in allowed:
        return value
    raise ValueError(f"{value!r} is not a {what}; expected one of {', '.join(allowed)}")


def _key(value: str) -> str:
    if is_template(value) or re.match(KEY_PATTERN, value):
        return value
    raise ValueError(
        f"{value!r} is not a key: start with a letter or digit, then letters, digits, '.', '_', '-'"
    )


Key = Annotated[str, AfterValidator(_key)]


class WriteTask(TaskBase):
    """Kestra's storage.Write: ``content`` stored as a file of the task run (output ``uri``)."""

    type: Literal["write"]
    content: Text
    extension: str | None = None

    @field_validator("extension")
    @classmethod
    def _extension(cls, value: str | None) -> str | None:
        if value is None or is_template(value) or re.match(r"^\.?[A-Za-z0-9_\-]{1,16}$", value):
            return value
        raise ValueError(f"{value!r} is not a file extension (such as .ion or .txt)")


class LocalFilesTask(TaskBase):
    """Kestra's LocalFiles: files in a WorkingDirectory's directory, to and from storage.

    ``inputs`` (name -> content; a ``kestra:///`` URI is replaced by that file's
    content) are written there; the files matching ``outputs`` (globs) are then
    stored, output ``uris`` (name -> URI). Outside a WorkingDirectory it works in
    a scratch directory of its own.
    """

    type: Literal["local_files"]
    inputs: dict[str, Any] | str = Field(default_factory=dict)
    outputs: list[str] | str = Field(default_factory=list)

    @field_validator("inputs")
    @classmethod
    def _relative(cls, files: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(files, dict):
            relative_names({str(name): "" for name in files})
        return files


class LogFetchTask(TaskBase):
    """Kestra's log Fetch: an execution's log lines (this one's unless ``executionId``) at
    ``level`` or above, of the tasks ``tasksId`` (all without), as a stored file of JSON
    lines; outputs ``uri`` and ``size`` (the lines)."""

    type: Literal["log_fetch"]
    execution_id: str | None = Field(default=None, alias="executionId")
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    tasks_id: list[str] | str = Field(default_factory=list, alias="tasksId")
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str | None:
        return _one_of(value, LOG_LEVELS, "log level")


class KvSetTask(TaskBase):
    """Kestra's kv.Set: ``key`` = ``value`` in the key-value store of ``namespace`` (the
    flow's by default), in the flow's organization."""

    type: Literal["kv_set"]
    key: Key
    value: Any
    namespace: str = "{{ flow.namespace }}"
    overwrite: bool | str = True
    ttl: str | None = None
    kv_type: str | None = Field(default=None, alias="kvType")
    kv_description: str | None = Field(default=None, alias="kvDescription")

    @field_validator("kv_type")
    @classmethod
    def _kv_type(cls, value: str | None) -> str | None:
        return _one_of(value, KV_TYPES, "kvType")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | None) -> str | None:
        return _check_duration(value)


class KvGetTask(TaskBase):
    """Kestra's kv.Get: output ``value``, the value of ``key`` (null when none)."""

    type: Literal["kv_get"]
    key: Key
    namespace: str = "{{ flow.namespace }}"
    error_on_missing: bool | str = Field(default=False, alias="errorOnMissing")


class KvDeleteTask(TaskBase):
    """Kestra's kv.Delete: output ``deleted``, whether ``key`` had a value."""

    type: Literal["kv_delete"]
    key: Key
    namespace: str = "{{ flow.namespace }}"
    error_on_missing: bool | str = Field(default=False, alias="errorOnMissing")


class PurgeLogsTask(TaskBase):
    """Kestra's PurgeLogs: remove the log lines of the organization's executions logged
    up to ``endDate`` (from ``startDate``), of ``logLevels`` (all when unset), under
    ``namespace`` (a prefix, or the flow's namespace with ``flowId``) or of one
    ``executionId``. The executions' events stay. Outputs ``count``,
    ``executionLogsCount`` and ``nonExecutionLogsCount`` (pausepoint keeps no logs
    outside executions: always 0)."""

    type: Literal["purge_logs"]
    end_date: str = Field(alias="endDate")
    start_date: str | None = Field(default=None, alias="startDate")
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    execution_id: str | None = Field(default=None, alias="executionId")
    log_levels: list[str] | None = Field(default=None, alias="logLevels")
    purge_execution_logs: bool | str = Field(default=True, alias="purgeExecutionLogs")
    purge_non_execution_logs: bool | str = Field(default=True, alias="purgeNonExecutionLogs")
    batch_size: int | None = Field(
        default=None,
        ge=1,
        alias="batchSize",
        description="Accepted for Kestra's flows; pausepoint always purges in bounded pages.",
    )

    @field_validator("log_levels")
    @classmethod
    def _levels(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            _one_of(value, LOG_LEVELS, "log level")
        return values

    @model_validator(mode="after")
    def _flow_needs_namespace(self) -> PurgeLogsTask:
        if self.flow_id is not None and self.namespace is None:
            raise ValueError("flowId needs namespace: the namespace of the flow")
        return self


class CheckFrequency(BaseModel):
    """How often a WaitFor checks, and when it gives up."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    max_iterations: int = Field(default=100, ge=1, alias="maxIterations")
    max_duration: str = Field(default="PT1H", alias="maxDuration")
    interval: str = "PT1S"

    @field_validator("max_duration", "interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        _check_duration(value)
        return value


class WaitForTask(FlowableBase):
    """Run ``tasks`` again and again while ``condition`` renders truthy (with ``until``:
    until it renders truthy, as Kestra's LoopUntil).

    The condition is checked after each pass (it can read the pass's outputs
    and ``outputs.<id>.iterationCount``); passes are ``checkFrequency.interval``
    apart on a durable timer. At ``maxIterations`` or ``maxDuration`` it stops:
    SUCCESS, or FAILED with ``failOnMaxReached``.
    """

    type: Literal["wait_for"]
    condition: str | bool
    tasks: list[Task] = Field(min_length=1)
    fail_on_max_reached: bool = Field(default=False, alias="failOnMaxReached")
    check_frequency: CheckFrequency = Field(default_factory=CheckFrequency, alias="checkFrequency")
    until: bool = Field(
        default=False, description="Stop once the condition renders truthy (else: once falsy)."
    )

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": self.tasks, **self.handlers()}


class DagNode(BaseModel):
    """One task of a Dag and the ids of the tasks it waits for."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    task: Task
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")


class DagTask(FlowableBase):
    """Run each task once every task it ``dependsOn`` has succeeded (``concurrent`` at once).

    The normaliser checks that dependencies name tasks of the same Dag and form
    no cycle. After a failure no new task starts; the Dag fails.
    """

    type: Literal["dag"]
    tasks: list[DagNode] = Field(min_length=1)
    concurrent: int | str = Field(
        default=0, description="0 runs every ready task at once; a {{ … }} template is allowed."
    )
    on_child_failure: OnChildFailure = Field(default="CONTINUE", alias="onChildFailure")

    @field_validator("concurrent")
    @classmethod
    def _concurrent(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not is_template(value):
            raise ValueError(f"expected an integer or a {{{{ … }}}} template, got {value!r}")
        if isinstance(value, int) and value < 0:
            raise ValueError("concurrent is 0 (every ready task at once) or more")
        return value

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tasks": [node.task for node in self.tasks], **self.handlers()}


ApprovalBehavior = Literal["CONTINUE", "WARN", "FAIL", "SUCCEED", "CANCEL", "KILL"]
CommentRequired = Literal["NEVER", "ALWAYS", "ON_DENY", "ON_APPROVE"]
NAME_PATTERN = r"^[A-Za-z0-9._@\-]{1,100}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Approvers(BaseModel):
    """Who may decide: users by name, members of groups, callers with a role.

    Empty everywhere: anyone allowed to control the execution (the operator role).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: list[Name] = Field(default_factory=list)
    groups: list[Name] = Field(default_factory=list)
    # Viewers never vote: deciding needs the operator role.
    roles: list[Literal["operator", "admin"]] = Field(default_factory=list)


class Decisions(BaseModel):
    """What the two decisions are called on the review form (Kestra's ``decisions``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approve: str = Field(default="Approve", min_length=1, max_length=100)
    deny: str = Field(default="Deny", min_length=1, max_length=100)


class ApprovalTask(FlowableBase):
    """Wait for a decision: approve or deny, by the right people, before a deadline.

    ``onWait`` runs first, then the execution waits for votes. ``quorum``
    approvals (overall, or per group) approve it; a deny denies it (``denyPolicy``
    ANY), or denies outnumbering half the approvals needed (MAJORITY). Then
    ``onApprove`` or ``onDeny`` runs, then ``errors``/``finally``, and the
    decision's behavior says what happens to the execution. ``timeout`` is the
    time reviewers have (Kestra's meaning): the request then expires.
    """

    type: Literal["approval"]
    title: str | None = Field(default=None, max_length=500)
    inputs: list[InputSpec] = Field(default_factory=list)
    decisions: Decisions = Field(default_factory=Decisions)
    comment_required: CommentRequired = Field(default="NEVER", alias="commentRequired")
    auto_approve: bool | str = Field(default=False, alias="autoApprove")
    approve_behavior: ApprovalBehavior = Field(default="CONTINUE", alias="approveBehavior")
    deny_behavior: ApprovalBehavior = Field(default="CANCEL", alias="denyBehavior")
    expire_behavior: ApprovalBehavior = Field(default="CANCEL", alias="expireBehavior")
    on_wait: list[Task] = Field(default_factory=list, alias="onWait")
    on_approve: list[Task] = Field(default_factory=list, alias="onApprove")
    on_deny: list[Task] = Field(default_factory=list, alias="onDeny")
    # pausepoint's own: who decides, how many, and who may not.
    approvers: Approvers = Field(
        default_factory=Approvers, validation_alias=AliasChoices("approvers", "assignment")
    )
    quorum: int | dict[Name, int] = 1
    deny_policy: Literal["ANY", "MAJORITY"] = Field(default="ANY", alias="denyPolicy")
    separation_of_duties: bool = Field(default=True, alias="separationOfDuties")
    admin_override: bool = Field(
        default=False,
        alias="adminOverride",
        description="An admin's approval is not bound by separation of duties.",
    )

    @field_validator("quorum")
    @classmethod
    def _quorum(cls, value: int | dict[str, int]) -> int | dict[str, int]:
        counts = value.values() if isinstance(value, dict) else [value]
        if isinstance(value, dict) and not value:
            raise ValueError("a quorum per group names at least one group")
        if any(count < 1 for count in counts):
            raise ValueError("a quorum counts at least 1 approval")
        return value

    @model_validator(mode="after")
    def _inputs_unique(self) -> ApprovalTask:
        ids = [spec.id for spec in self.inputs]
        if len(ids) != len(set(ids)):
            raise ValueError("inputs: each input id must be unique")
        return self

    @property
    def is_leaf(self) -> bool:
        return False

    @property
    def required_approvals(self) -> int:
        """How many approvals the quorum needs in all (per group ones added up)."""
        return sum(self.quorum.values()) if isinstance(self.quorum, dict) else self.quorum

    def blocks(self) -> dict[str, list[Task]]:
        return {
            "onWait": self.on_wait,
            "onApprove": self.on_approve,
            "onDeny": self.on_deny,
            **self.handlers(),
        }


TOOL_NAME_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"


class AgentProvider(BaseModel):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    base_url: str = Field(alias="baseUrl", description="Up to /v1, e.g. http://localhost:11434/v1.")
    model: str
    api_key: str | None = Field(default=None, alias="apiKey", description="Use {{ secrets.… }}.")
    headers: dict[str, str] = Field(default_factory=dict)


class AgentTool(BaseModel):
    """A tool the model may call: a Python function by import path, or any flow task.

    A task tool reads the model's arguments as ``{{ args.… }}``; its JSON Schema
    is ``parameters``. A Python tool's schema comes from its signature and
    docstring unless ``parameters`` is given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    python: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    task: Task | None = None

    @model_validator(mode="before")
    @classmethod
    def _task_id(cls, data: Any) -> Any:
        # A tool's task is named by the tool; writing its id again is optional.
        if isinstance(data, dict) and isinstance(data.get("task"), dict):
            task = data["task"]
            if "id" not in task and isinstance(data.get("name"), str):
                data = {**data, "task": {"id": data["name"], **task}}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> AgentTool:
        if (self.python is None) == (self.task is None):
            raise ValueError(f"tool '{self.name}' needs exactly one of 'python' or 'task'")
        if self.task is not None and not self.task.is_leaf:
            raise ValueError(f"tool '{self.name}': its task must be a leaf task")
        return self

    def as_task(self) -> TaskBase:
        """The task a call of this tool runs (a Python tool is a ``python`` task)."""
        if self.task is not None:
            return self.task
        assert self.python is not None
        return PythonTask(id=self.name, type="python", function=self.python)


class ToolApproval(BaseModel):
    """Which tool calls wait for a decision: of these ``tools``, those ``when`` (a template
    with ``call.name`` and ``call.arguments``) renders true for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tools: Literal["always"] | list[str] = "always"
    when: str | None = None


class AgentTask(TaskBase):
    """An LLM loop: model call → tool calls → next model call, each a checkpoint.

    ``timeout`` and ``retry`` apply to each model call. ``approve`` names the
    tools whose calls wait for a decision (``always``: every tool), or gives
    ``tools`` and a ``when`` template that decides per call.
    """

    type: Literal["agent"]
    provider: AgentProvider
    system: str | None = None
    prompt: str
    tools: list[AgentTool] = Field(default_factory=list)
    approve: Literal["never", "always"] | list[str] | ToolApproval = "never"
    max_turns: int = Field(default=10, ge=1, le=1000, alias="maxTurns")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, alias="maxTokens")
    stream: bool = Field(default=True, description="Stream tokens live as agent.delta events.")

    @model_validator(mode="after")
    def _known_tools(self) -> AgentTask:
        names = [tool.name for tool in self.tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tool names must be unique: {', '.join(duplicates)}")
        listed = self.approve.tools if isinstance(self.approve, ToolApproval) else self.approve
        if isinstance(listed, list):
            unknown = [name for name in listed if name not in names]
            if unknown:
                raise ValueError(f"approve names unknown tools: {', '.join(unknown)}")
        return self

    @property
    def is_leaf(self) -> bool:
        return False

    def blocks(self) -> dict[str, list[Task]]:
        return {"tools": [tool.as_task() for tool in self.tools]}  # type: ignore[misc]

    def needs_approval(self, tool: str) -> bool:
        """Whether calls of ``tool`` may wait for a decision (``approve.when`` decides each)."""
        listed = self.approve.tools if isinstance(self.approve, ToolApproval) else self.approve
        return listed == "always" or (isinstance(listed, list) and tool in listed)

    @property
    def approve_when(self) -> str | None:
        return self.approve.when if isinstance(self.approve, ToolApproval) else None


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
    | ForEachTask
    | LoopTask
    | AgentTask
    | FailTask
    | AssertTask
    | ExitTask
    | SleepTask
    | LabelsTask
    | SetVariablesTask
    | UnsetVariablesTask
    | ResumeTask
    | ToggleTriggerTask
    | SubflowTask
    | ForEachItemTask
    | AllowFailureTask
    | WorkingDirectoryTask
    | WaitForTask
    | DagTask
    | ApprovalTask
    | WriteTask
    | LocalFilesTask
    | LogFetchTask
    | KvSetTask
    | KvGetTask
    | KvDeleteTask
    | PurgeLogsTask,
    Field(discriminator="type"),
]

LEAF_TYPES = frozenset(
    {
        "log",
        "return",
        "outputs",
        "python",
        "shell",
        "http",
        "resume",
        "toggle_trigger",
        "subflow",
        "items_split",
        "items_batch",
        "items_merge",
        "write",
        "local_files",
        "log_fetch",
        "kv_set",
        "kv_get",
        "kv_delete",
        "purge_logs",
        "loop_values",
        "loop_store",
    }
)


class CascadePolicy(BaseModel):
    """Which control commands on an execution reach the subflow executions it waits for.

    A request may decide otherwise for itself (its ``cascade``). Resume reaches only
    what a cascade paused, never a subflow's own Pause task or a person's hold.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pause: bool = True
    resume: bool = True
    cancel: bool = True
    terminate: bool = True


class FlowOutput(BaseModel):
    """A typed flow output (Kestra's list form): ``value`` is rendered, then checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    type: str
    value: Any
    description: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    required: bool = True

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        InputSpec(id="output", type=value)  # the same types and message as inputs
        return value.strip().upper()

    def as_input(self) -> InputSpec:
        """The rules its rendered value must meet: those of an input of its type."""
        return InputSpec(id=self.id, type=self.type, required=self.required)


def _outputs_form(value: Any) -> str:
    return "list" if isinstance(value, list) else "map"


FlowOutputs = Annotated[
    Annotated[dict[str, Any], Tag("map")] | Annotated[list[FlowOutput], Tag("list")],
    Discriminator(_outputs_form),
]
"""pausepoint's ``{name: template}`` map, or Kestra's typed ``[{id, type, value}]`` list."""


class Concurrency(BaseModel):
    """At most ``limit`` executions of the flow at once; ``behavior``: what a new one does."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    limit: int = Field(ge=1, validation_alias=AliasChoices("limit", "maximum"))
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"
    queue_size: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("queueSize", "queueLimit"),
        description="With QUEUE: at most this many wait; one more is created CANCELLED.",
    )
    duration: str | None = Field(
        default=None,
        description="How long an execution holds its slot at most: past it, the slot is "
        "given to the next one while it keeps running.",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_queue_bound(cls, data: Any) -> Any:
        if isinstance(data, dict) and "queueSize" in data and "queueLimit" in data:
            raise ValueError(
                "queueSize and queueLimit are two names of the same bound: give one of them"
            )
        return data

    @field_validator("queue_size")
    @classmethod
    def _queue_needs_queue(cls, value: int | None, info: ValidationInfo) -> int | None:
        behavior = info.data.get("behavior")  # absent: its own error is reported
        if value is not None and behavior not in (None, "QUEUE"):
            raise ValueError(
                f"a queue bound only applies with behavior QUEUE (behavior is {behavior}): "
                "nothing waits, so remove it or use QUEUE"
            )
        return value

    @field_validator("duration")
    @classmethod
    def _slot_duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f"{value!r} is not longer than zero: a slot must be held a while")
        return value

    @property
    def slot_seconds(self) -> float | None:
        """How long an execution holds its slot at most (``duration``), in seconds."""
        return None if self.duration is None else parse_duration(self.duration)


SLA_TYPES = ("MAX_DURATION", "EXECUTION_ASSERTION")


class SlaBase(BaseModel):
    """A flow's service-level agreement (Kestra's ``sla``): what a violation does.

    FAIL and CANCEL end the execution in that state (in-flight work killed, as
    Kestra kills it); NONE leaves it running. ``labels`` are added to the
    execution's in every case.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(min_length=1)
    behavior: Literal["FAIL", "CANCEL", "NONE"]
    labels: dict[str, str] = Field(default_factory=dict)


class MaxDurationSla(SlaBase):
    """Violated once ``duration`` has passed since the execution was created."""

    type: Literal["MAX_DURATION"]
    duration: str

    @field_validator("duration")
    @classmethod
    def _positive_duration(cls, value: str) -> str:
        if is_template(value):
            raise ValueError("an sla duration is an ISO-8601 duration (e.g. PT1H), not a template")
        if parse_duration(value) <= 0:
            raise ValueError(f"{value!r} is not a positive duration")
        return value


class ExecutionAssertionSla(SlaBase):
    """Violated when ``assert`` (a template) renders falsy, checked at each change of the
    execution while it runs."""

    type: Literal["EXECUTION_ASSERTION"]
    assert_: str = Field(alias="assert", min_length=1)


Sla = Annotated[MaxDurationSla | ExecutionAssertionSla, Field(discriminator="type")]


class Flow(BaseModel):
    """A validated flow definition."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
    namespace: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
    description: str | None = None
    revision: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    inputs: list[InputSpec] = Field(default_factory=list)
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Constants the flow's templates read as vars.<name>."
    )
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    after_execution: list[Task] = Field(
        default_factory=list,
        alias="afterExecution",
        description="Tasks run once its outcome is decided (after finally); they do not "
        "change it. `execution.state` is that outcome, in Kestra's names.",
    )
    outputs: FlowOutputs = Field(default_factory=dict)
    timeout: str | None = None
    concurrency: Concurrency | None = None
    sla: list[Sla] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)
    disabled: bool = Field(default=False, description="Nothing starts a disabled flow.")
    cascade: CascadePolicy = Field(
        default_factory=CascadePolicy,
        description="Which control commands reach the subflow executions it waits for.",
    )
    clock: Literal["RUN", "FREEZE"] = Field(
        default="RUN",
        description="While a pause holds it: RUN lets its deadlines (timeout, task timeouts, "
        "pauseDuration) fall due; FREEZE stops them, and each resumes with the time it had left.",
    )

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        return _check_duration(value)

    def blocks(self) -> dict[str, list[Task]]:
        return {
            "tasks": self.tasks,
            "errors": self.errors,
            "finally": self.finally_,
            "afterExecution": self.after_execution,
        }


for _model in (
    FlowableBase,
    PauseTask,
    SequentialTask,
    ParallelTask,
    IfTask,
    SwitchTask,
    ForEachTask,
    LoopTask,
    AgentTool,
    AgentTask,
    AllowFailureTask,
    WorkingDirectoryTask,
    WaitForTask,
    DagNode,
    DagTask,
    Flow,
):
    _model.model_rebuild()
