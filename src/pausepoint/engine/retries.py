"""Kestra's retry behaviors beyond rerunning the failed task.

- ``RETRY_FLOWABLE`` (on a flowable task): when the flowable is about to end
  FAILED (after its own ``errors`` and ``finally``), it waits its retry delay on
  a durable timer and then starts again as a whole, as a new attempt of the same
  task run; its tasks run again as new task runs (the earlier rounds' runs stay,
  as history). Its tasks keep their own retries inside each round. With
  ``allowFailure`` the failure is allowed only once the attempts are used up.
- ``CREATE_NEW_EXECUTION`` (on a task, or the flow's ``retry``): a failed task
  waits its delay on a durable timer, then a leaf stage (``retry_execution``)
  starts a new execution of the flow with the same inputs, labels and trigger
  (the ``system.replay`` label added), its attempt number one more, and
  ``execution.originalId`` naming the first execution. The stage's start is
  keyed by its task run, so however often it runs (a crash, a replayed step)
  one execution is started. This execution then ends FAILED, saying which
  execution retries it (Kestra's RETRIED); its ``errors`` and ``finally`` do not
  run. ``maxAttempts`` counts executions, ``maxDuration`` runs from the first
  execution's creation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pausepoint.engine.flowindex import RETRY_EXECUTION_PATH
from pausepoint.engine.model import TaskRunState
from pausepoint.engine.state import CONTAINERS, TaskRun
from pausepoint.errors import TemplateError
from pausepoint.flow.model import Retry

if TYPE_CHECKING:
    from pausepoint.engine.scheduler import Scheduler

T = TaskRunState


def policy_of(scheduler: Scheduler, run: TaskRun) -> Retry | None:
    return scheduler.index.task(run["path"]).retry


def retry_flowable(scheduler: Scheduler, run: TaskRun) -> bool:
    """A flowable with RETRY_FLOWABLE whose tasks failed: arm its retry and say True,
    or False when it ends FAILED now (no such retry, attempts or duration used up,
    or the execution is being stopped)."""
    if run["type"] == "iteration":
        return False  # an iteration shares its ForEach's path: the ForEach is what reruns
    policy = policy_of(scheduler, run)
    if policy is None or policy.behavior != "RETRY_FLOWABLE" or scheduler.state["stop"]:
        return False
    delay = scheduler.retry_delay(run, scheduler.index.task(run["path"]))
    if delay is None:
        return False
    scheduler.wait_to_retry(run, delay, run["failure"])
    return True


def retry_due(scheduler: Scheduler, run: TaskRun) -> None:
    """A run's retry delay passed: it runs again (the next drive starts it)."""
    if run.get("new_execution") == "waiting":
        run["new_execution"] = "due"
    else:
        run["state"] = T.CREATED.value
        run["attempt"] += 1
        if run["type"] in CONTAINERS:
            run["rerun"] = True  # a flowable: it starts again as a whole
    scheduler.touch(run)


def restart_flowable(scheduler: Scheduler, run: TaskRun) -> None:
    """Start a flowable's next attempt: what the last one left behind is forgotten."""
    for key in (
        "rerun",
        "block",
        "failure",
        "stage",
        "warn",
        "error",
        "branch",
        "waiting",
        "outputs",
    ):
        run.pop(key, None)  # type: ignore[misc]
    task = scheduler.index.task(run["path"])
    try:
        scheduler.start_container(run, task)
    except TemplateError as error:
        scheduler.finish_run(run, T.FAILED, error=str(error))


def warn_after_retry(scheduler: Scheduler, run: TaskRun) -> bool:
    """Whether a flowable that succeeded after a retry ends WARNING (``warningOnRetry``)."""
    if run["attempt"] <= 1 or run["type"] == "iteration":
        return False
    policy = policy_of(scheduler, run)
    return policy is not None and policy.warning_on_retry


def new_execution_attempt(scheduler: Scheduler) -> tuple[int, float]:
    """This execution's attempt number and when its first attempt was created."""
    origin = scheduler.state.get("origin")
    if origin is None:
        return 1, scheduler.state["created_at"]
    return origin["attempt"], origin["created_at"]


def start_new_execution(scheduler: Scheduler, run: TaskRun) -> None:
    """The retry delay of ``run`` passed: the stage that starts the new execution runs."""
    stage = scheduler.new_run(
        run,
        task_id=f"{run['task_id']}_retry",
        path=RETRY_EXECUTION_PATH,
        type="retry_execution",
    )
    run["new_execution"] = "started"
    scheduler.touch(run)
    scheduler.start_leaf(stage)


def stage_spec(scheduler: Scheduler) -> dict[str, Any]:
    """What the ``retry_execution`` stage tells the runtime: the new execution's origin."""
    attempt, created_at = new_execution_attempt(scheduler)
    origin = scheduler.state.get("origin")
    return {
        "originalId": origin["id"] if origin else scheduler.state["execution_id"],
        "attempt": attempt + 1,
        "originalCreatedAt": created_at,
    }


def retried(scheduler: Scheduler, stage: TaskRun, outputs: dict[str, Any]) -> None:
    """The new execution started: the failed run and this execution end FAILED, naming it."""
    retry_id = str(outputs.get("executionId"))
    scheduler.finish_run(stage, T.SUCCESS, outputs=outputs)
    failed = scheduler.owner_of(stage)
    scheduler.state["retried_by"] = retry_id
    scheduler.finish_run(failed, T.FAILED, error=failed.get("error"))
    scheduler.emit(
        "workflow.retried", task_run_id=failed["id"], task_id=failed["task_id"], by=retry_id
    )
    scheduler.exit(
        failed,
        "FAILED",
        reason=f"task '{failed['task_id']}' failed; execution {retry_id} retries it",
    )


def not_retried(scheduler: Scheduler, stage: TaskRun, error: str) -> None:
    """The new execution could not be started: the failed run ends FAILED as it would have."""
    scheduler.finish_run(stage, T.FAILED, error=error)
    failed = scheduler.owner_of(stage)
    failed.pop("new_execution", None)
    scheduler.finish_run(failed, T.FAILED, error=f"{failed.get('error')} (not retried: {error})")
