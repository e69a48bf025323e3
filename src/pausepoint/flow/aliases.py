"""Kestra task types accepted as aliases of pausepoint's short task types.

One table, :data:`TASK_TYPE_ALIASES`: a Kestra ``type:`` name maps to the
pausepoint short type, the Kestra property names to rename, and defaults to
fill in when the property is absent. To accept another Kestra type, add a row.

Notable mappings (the engine sees only the pausepoint form):

- ``core.debug.Echo`` is a ``log`` whose ``format`` becomes ``message``.
- ``core.flow.ForEach`` is a ``foreach``; ``concurrencyLimit`` becomes
  ``concurrency`` (default 1; 0 = every iteration at once).
- ``core.flow.Loop`` is a ``loop``: iterations on their own, ``item.*``.
- ``core.flow.EachSequential`` / ``EachParallel`` are ``foreach`` with
  ``value`` renamed ``values`` and ``concurrency`` 1 / 0 (0 = all at once;
  EachParallel's ``concurrent`` becomes ``concurrency``).
- ``core.flow.Parallel``'s ``concurrent`` becomes ``concurrency``.
- A retry's ``maxAttempt`` becomes ``maxAttempts`` (any task).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pausepoint.flow.model import Task


@dataclass(frozen=True)
class TaskAlias:
    """How one Kestra task type becomes a pausepoint task."""

    short: str
    renames: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)


def _short_types() -> tuple[str, ...]:
    names: list[str] = []
    for model in get_args(get_args(Task)[0]):
        names.extend(get_args(model.model_fields["type"].annotation))
    return tuple(names)


SHORT_TYPES: tuple[str, ...] = _short_types()
"""pausepoint's own task types, in the order of the model's union."""

BlockKind = Literal["list", "single", "cases", "dag"]

_HANDLERS: Mapping[str, BlockKind] = {"errors": "list", "finally": "list"}

TASK_BLOCKS: Mapping[str, Mapping[str, BlockKind]] = {
    "pause": {"tasks": "list", "onPause": "single", **_HANDLERS},
    "sequential": {"tasks": "list", **_HANDLERS},
    "parallel": {"tasks": "list", **_HANDLERS},
    "foreach": {"tasks": "list", **_HANDLERS},
    "loop": {"tasks": "list", **_HANDLERS},
    "if": {"then": "list", "else": "list", **_HANDLERS},
    "switch": {"cases": "cases", "defaults": "list", **_HANDLERS},
    "allow_failure": {"tasks": "list", **_HANDLERS},
    "working_directory": {"tasks": "list", **_HANDLERS},
    "wait_for": {"tasks": "list", **_HANDLERS},
    "dag": {"tasks": "dag", **_HANDLERS},
    "foreach_item": {**_HANDLERS},
    "approval": {"onWait": "list", "onApprove": "list", "onDeny": "list", **_HANDLERS},
}
"""Properties (as written in YAML) that hold child tasks, per short type."""

RETRY_RENAMES: Mapping[str, str] = {"maxAttempt": "maxAttempts"}

_PAUSE = TaskAlias("pause")
_LOG = TaskAlias("log")
_ECHO = TaskAlias("log", renames={"format": "message"})
# Kestra's Return renders its format to text: '{{ 1 + 1 }}' is "2", a list its JSON.
_RETURN = TaskAlias("return", defaults={"asText": True})
_OUTPUTS = TaskAlias("outputs")
# Kestra's OutputValues renders its values to text: '{{ 1 + 1 }}' is "2", not 2.
_KESTRA_OUTPUTS = TaskAlias("outputs", defaults={"asText": True})
_SEQUENTIAL = TaskAlias("sequential")
_PARALLEL = TaskAlias("parallel", renames={"concurrent": "concurrency"})
_IF = TaskAlias("if")
_SWITCH = TaskAlias("switch")
# Kestra's each-tasks run one iteration per distinct value unless `deduplicate: false`.
_FOREACH = TaskAlias(
    "foreach",
    renames={"concurrencyLimit": "concurrency"},
    defaults={"concurrency": 1, "deduplicate": True},
)
_LOOP = TaskAlias("loop")
_EACH_SEQUENTIAL = TaskAlias(
    "foreach", renames={"value": "values"}, defaults={"concurrency": 1, "deduplicate": True}
)
_EACH_PARALLEL = TaskAlias(
    "foreach",
    renames={"value": "values", "concurrent": "concurrency"},
    defaults={"concurrency": 0, "deduplicate": True},
)
_SHELL = TaskAlias("shell")
_HTTP = TaskAlias("http")
_FAIL = TaskAlias("fail")
_EXIT = TaskAlias("exit")
_KILL = TaskAlias("exit", defaults={"state": "KILLED"})
_ASSERT = TaskAlias("assert")
# Sleep's `delay` is its duration under the name Kestra's Pause used for it.
_SLEEP = TaskAlias("sleep", renames={"delay": "duration"})
_LABELS = TaskAlias("labels")
_SET_VARIABLES = TaskAlias("set_variables")
_UNSET_VARIABLES = TaskAlias("unset_variables")
_RESUME = TaskAlias("resume")
_SUBFLOW = TaskAlias("subflow")
_FOR_EACH_ITEM = TaskAlias("foreach_item")
_ALLOW_FAILURE = TaskAlias("allow_failure")
_WORKING_DIRECTORY = TaskAlias("working_directory")
_WAIT_FOR = TaskAlias("wait_for")
_LOOP_UNTIL = TaskAlias("wait_for", defaults={"until": True})
_DAG = TaskAlias("dag")
_WRITE = TaskAlias("write")
_LOCAL_FILES = TaskAlias("local_files")
_LOG_FETCH = TaskAlias("log_fetch")

TASK_TYPE_ALIASES: Mapping[str, TaskAlias] = {
    "io.kestra.plugin.core.flow.Pause": _PAUSE,
    "io.kestra.core.tasks.flows.Pause": _PAUSE,
    "io.kestra.plugin.core.log.Log": _LOG,
    "io.kestra.core.tasks.log.Log": _LOG,
    "io.kestra.plugin.core.debug.Echo": _ECHO,
    "io.kestra.core.tasks.debugs.Echo": _ECHO,
    "io.kestra.plugin.core.debug.Return": _RETURN,
    "io.kestra.core.tasks.debugs.Return": _RETURN,
    "io.kestra.plugin.core.output.OutputValues": _KESTRA_OUTPUTS,
    "io.kestra.core.tasks.outputs.OutputValues": _KESTRA_OUTPUTS,
    "io.kestra.plugin.core.flow.Sequential": _SEQUENTIAL,
    "io.kestra.core.tasks.flows.Sequential": _SEQUENTIAL,
    "io.kestra.plugin.core.flow.Parallel": _PARALLEL,
    "io.kestra.core.tasks.flows.Parallel": _PARALLEL,
    "io.kestra.plugin.core.flow.If": _IF,
    "io.kestra.core.tasks.flows.If": _IF,
    "io.kestra.plugin.core.flow.Switch": _SWITCH,
    "io.kestra.core.tasks.flows.Switch": _SWITCH,
    "io.kestra.plugin.core.flow.ForEach": _FOREACH,
    "io.kestra.core.tasks.flows.ForEach": _FOREACH,
    "io.kestra.plugin.core.flow.Loop": _LOOP,
    "io.kestra.plugin.core.flow.EachSequential": _EACH_SEQUENTIAL,
    "io.kestra.core.tasks.flows.EachSequential": _EACH_SEQUENTIAL,
    "io.kestra.plugin.core.flow.EachParallel": _EACH_PARALLEL,
    "io.kestra.core.tasks.flows.EachParallel": _EACH_PARALLEL,
    "io.kestra.plugin.core.execution.Fail": _FAIL,
    "io.kestra.core.tasks.executions.Fail": _FAIL,
    "io.kestra.plugin.core.execution.Exit": _EXIT,
    "io.kestra.plugin.core.execution.Assert": _ASSERT,
    "io.kestra.plugin.core.flow.Sleep": _SLEEP,
    # The name Kestra's SequentialTest#waitTaskTest gives Sleep (with its `delay`).
    "io.kestra.plugin.core.flow.Wait": _SLEEP,
    "io.kestra.plugin.core.execution.Labels": _LABELS,
    "io.kestra.plugin.core.execution.SetVariables": _SET_VARIABLES,
    "io.kestra.plugin.core.execution.UnsetVariables": _UNSET_VARIABLES,
    "io.kestra.core.tasks.executions.Labels": _LABELS,
    "io.kestra.plugin.core.execution.Resume": _RESUME,
    "io.kestra.plugin.core.flow.Subflow": _SUBFLOW,
    "io.kestra.core.tasks.flows.Subflow": _SUBFLOW,
    "io.kestra.core.tasks.flows.Flow": _SUBFLOW,
    "io.kestra.plugin.core.flow.Flow": _SUBFLOW,
    "io.kestra.plugin.core.flow.ForEachItem": _FOR_EACH_ITEM,
    "io.kestra.core.tasks.flows.ForEachItem": _FOR_EACH_ITEM,
    "io.kestra.plugin.core.flow.AllowFailure": _ALLOW_FAILURE,
    "io.kestra.core.tasks.flows.AllowFailure": _ALLOW_FAILURE,
    "io.kestra.plugin.core.flow.WorkingDirectory": _WORKING_DIRECTORY,
    "io.kestra.core.tasks.flows.WorkingDirectory": _WORKING_DIRECTORY,
    "io.kestra.plugin.core.flow.WaitFor": _WAIT_FOR,
    # WaitFor's newer name in Kestra, whose condition says when to stop.
    "io.kestra.plugin.core.flow.LoopUntil": _LOOP_UNTIL,
    # Kill without an executionId kills its own execution: Exit's KILLED.
    "io.kestra.plugin.core.execution.Kill": _KILL,
    "io.kestra.plugin.core.flow.Dag": _DAG,
    "io.kestra.plugin.core.trigger.Toggle": TaskAlias("toggle_trigger"),
    "io.kestra.core.tasks.trigger.Toggle": TaskAlias("toggle_trigger"),
    "io.kestra.plugin.core.flow.Approval": TaskAlias("approval"),
    "io.kestra.core.tasks.flows.Dag": _DAG,
    "io.kestra.plugin.scripts.shell.Commands": _SHELL,
    "io.kestra.plugin.scripts.shell.Script": TaskAlias("shell", renames={"script": "commands"}),
    "io.kestra.core.tasks.scripts.Bash": _SHELL,
    # The shell task as Kestra's SleepTest and SequentialTest flows name it.
    "io.kestra.plugin.core.scripts.Shell": _SHELL,
    "io.kestra.plugin.core.http.Request": _HTTP,
    "io.kestra.plugin.fs.http.Request": _HTTP,
    "io.kestra.plugin.core.storage.Write": _WRITE,
    "io.kestra.plugin.core.storage.LocalFiles": _LOCAL_FILES,
    "io.kestra.core.tasks.storages.LocalFiles": _LOCAL_FILES,
    # Kestra's tests keep LocalFiles, unchanged, under this name (their flows use it).
    "io.kestra.plugin.core.flow.WorkingDirectoryTest$LocalFiles": _LOCAL_FILES,
    "io.kestra.plugin.core.log.Fetch": _LOG_FETCH,
    "io.kestra.core.tasks.log.Fetch": _LOG_FETCH,
    "io.kestra.core.tasks.debugs.Fetch": _LOG_FETCH,
    "io.kestra.plugin.core.kv.Set": TaskAlias("kv_set"),
    "io.kestra.plugin.core.kv.Get": TaskAlias("kv_get"),
    "io.kestra.plugin.core.kv.Delete": TaskAlias("kv_delete"),
    "io.kestra.plugin.core.log.PurgeLogs": TaskAlias("purge_logs"),
}


NOT_YET_SUPPORTED: Mapping[str, str] = {}
"""Kestra task types that later work will bring, and what that work is called."""

NOT_YET_SUPPORTED_FLOW_PROPERTIES: Mapping[str, str] = {
    "listeners": "deprecated in Kestra: use errors and finally",
    "checks": "flow checks",
    "workerGroup": "worker groups",
    "taskCache": "task caching",
}
"""Kestra flow properties pausepoint refuses by name, rather than as unknown."""


def resolve_task_type(name: str) -> TaskAlias | None:
    """The alias for a Kestra type or a pausepoint short type; None when unknown."""
    if name in SHORT_TYPES:
        return TaskAlias(name)
    if name.startswith("org.kestra."):  # Kestra's names before it moved to io.kestra
        name = "io." + name.removeprefix("org.")
    return TASK_TYPE_ALIASES.get(name)
