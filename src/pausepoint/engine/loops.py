"""A Loop's storage stages: values read from a stored file, outputs kept as files.

The engine does no I/O, so a Loop whose ``values`` render to a stored file's
URI first runs a leaf stage, ``<id>_values``, that reads the file; its
iterations start from what it read. With fetchType STORE (AUTO over a stored
file), a last leaf stage, ``<id>_store``, writes each iteration's declared
outputs to a file of its own, and the loop keeps only their URIs.

A loop run's ``stage`` says where it is: ``values``, ``tasks``, ``store``
(then, as any container's, ``errors`` and ``finally``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pausepoint.engine.state import TaskRun, new_block
from pausepoint.errors import TemplateError
from pausepoint.flow.model import LoopTask
from pausepoint.storage import SCHEME

if TYPE_CHECKING:
    from pausepoint.engine.scheduler import Scheduler

STAGES = frozenset({"values", "tasks", "store"})
"""A loop run's stages before its handlers."""

STAGE_TYPES = frozenset({"loop_values", "loop_store"})


def names_stored_file(values: Any) -> bool:
    return isinstance(values, str) and values.strip().startswith(SCHEME)


def start_values_stage(run: TaskRun) -> None:
    """The loop first reads its values from the stored file its ``values`` name."""
    run["stage"] = "values"
    run["block"] = new_block(f"{run['path']}.values", 1)


def next_stage(scheduler: Scheduler, run: TaskRun, stage: str) -> bool:
    """After a stage of a loop run succeeded: start its next one and say True, or False
    when it has none. Values that are not a list fail the loop (``failure``)."""
    task = scheduler.index.task(run["path"])
    assert isinstance(task, LoopTask)
    if stage == "values":
        try:
            block = scheduler.iteration_block(task, _stage_outputs(scheduler, run, "loop_values"))
        except TemplateError as error:
            run["failure"] = str(error)
            return False
    elif stage == "tasks" and stores_outputs(scheduler, run, task):
        block = new_block(f"{run['path']}.store", 1)
    else:
        return False
    run["stage"] = "store" if stage == "tasks" else "tasks"
    run["block"] = block
    scheduler.touch(run)
    scheduler.drive_run(run)
    return True


def stores_outputs(scheduler: Scheduler, run: TaskRun, task: LoopTask) -> bool:
    values_were_stored = _stage_run(scheduler, run, "loop_values") is not None
    return task.stores_outputs(values_were_stored)


def stage_spec(scheduler: Scheduler, run: TaskRun) -> dict[str, Any]:
    """What a stage's leaf needs besides its properties: the task id its files are named
    by, and for ``loop_store`` each iteration's rendered outputs, in order."""
    spec: dict[str, Any] = {"taskId": run["task_id"]}
    if run["type"] == "loop_store":
        loop = scheduler.owner_of(run)
        spec["iterations"] = [r["outputs"] for r in iterations(scheduler, loop) if "outputs" in r]
    return spec


def outputs(scheduler: Scheduler, run: TaskRun, stage: str) -> dict[str, Any]:
    """The loop's outputs once its last stage ended. Kept as files (STORE), the stored
    files' URIs stand in place of the iterations' outputs, which the iterations keep no
    more; a loop that failed before storing them shows none."""
    decided = scheduler.loop_outputs(run)
    task = scheduler.index.task(run["path"])
    assert isinstance(task, LoopTask)
    if not stores_outputs(scheduler, run, task):
        return decided
    stored = _stage_outputs(scheduler, run, "loop_store") if stage == "store" else None
    if not isinstance(stored, list):
        decided.pop("outputs", None)
        return decided
    decided["outputs"] = stored
    with_outputs = [r for r in iterations(scheduler, run) if "outputs" in r]
    for iteration, entry in zip(with_outputs, stored, strict=False):
        iteration["outputs"] = entry
        scheduler.touch(iteration)
    return decided


def iterations(scheduler: Scheduler, loop: TaskRun) -> list[TaskRun]:
    """A loop run's iterations, in order (its stage runs left out)."""
    found = [
        r for r in scheduler.runs.values() if r["parent"] == loop["id"] and r["type"] == "iteration"
    ]
    return sorted(found, key=lambda r: r.get("index", 0))


def _stage_run(scheduler: Scheduler, loop: TaskRun, type_: str) -> TaskRun | None:
    found = [r for r in scheduler.runs.values() if r["parent"] == loop["id"] and r["type"] == type_]
    return found[-1] if found else None


def _stage_outputs(scheduler: Scheduler, loop: TaskRun, type_: str) -> Any:
    """What the loop's stage of ``type_`` output (``values`` or ``outputs``)."""
    stage = _stage_run(scheduler, loop, type_)
    name = "values" if type_ == "loop_values" else "outputs"
    return None if stage is None else stage.get("outputs", {}).get(name)
