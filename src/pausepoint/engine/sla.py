"""Kestra's flow-level SLAs: when they are checked and what a violation does.

Kestra checks an ``EXECUTION_ASSERTION`` at every change of an execution that
is neither ended nor waiting for a concurrency slot, before the change is acted
on; an assertion that does not render counts as violated. A ``MAX_DURATION``
is a deadline counted from the execution's creation (time spent queued
included); here it is a durable timer of the execution, armed when the engine
first sees it, so it is kept across a restart and is a workflow timer on
Temporal.

Of the slas found violated at one change, only the first acts; each is reported
once (a ``sla.violated`` event). A violation adds the sla's ``labels`` to the
execution's, then: ``NONE`` leaves the execution running; ``FAIL`` and
``CANCEL`` end it as Kestra's kill does: what runs is killed, the last task run
still going ends FAILED (or CANCELLED), the others CANCELLED, and the
execution ends FAILED (or CANCELLED) through the Exit path, so neither
``errors`` nor ``finally`` nor ``afterExecution`` run. Subflows it waits for
are cancelled as for any parent that stops waiting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pausepoint.engine.model import (
    TERMINAL_TASK_STATES,
    CancelTask,
    ExecutionStatus,
    RunTask,
    SetTimer,
)
from pausepoint.engine.model import TaskRunState as T
from pausepoint.engine.scheduler import truthy
from pausepoint.engine.state import ExitRequest, Timer, timer_id_of
from pausepoint.errors import TemplateError
from pausepoint.flow.durations import format_duration, parse_duration
from pausepoint.flow.model import ExecutionAssertionSla, MaxDurationSla, Sla
from pausepoint.flow.templates import render

if TYPE_CHECKING:
    from pausepoint.engine.scheduler import Scheduler

Violation = tuple[int, Sla, str]  # the sla's position in the flow, the sla, why


def arm(sched: Scheduler) -> None:
    """Arm a durable timer per ``MAX_DURATION`` sla, due that long after creation; once
    per execution, whichever event it first sees (a start, or a resume of an execution
    paused before it started)."""
    durations = [s for s in sched.index.flow.sla if isinstance(s, MaxDurationSla)]
    if not durations or sched.state.get("sla_armed") or sched.status.is_terminal:
        return
    sched.state["sla_armed"] = True
    created = sched.state["created_at"]
    for position, sla in enumerate(sched.index.flow.sla):
        if isinstance(sla, MaxDurationSla):
            deadline = created + parse_duration(sla.duration)
            key = timer_id_of("sla", str(position))
            timer: Timer = {"deadline": deadline, "kind": "sla", "sla": position}
            sched.state["timers"][key] = timer
            sched.act(SetTimer(key, deadline))


def _watched(sched: Scheduler) -> bool:
    """Whether a violation may still change the execution: not ended, not already ending
    as an Exit asked or as decided before its afterExecution tasks, and not waiting for a
    concurrency slot (Kestra looks at an execution only once it is admitted)."""
    status = sched.status
    return not (
        status.is_terminal
        or status is ExecutionStatus.QUEUED
        or sched.state.get("exit") is not None
        or "decided" in sched.state
    )


def check_assertions(sched: Scheduler) -> None:
    """Evaluate the ``EXECUTION_ASSERTION`` slas on the execution as it is now."""
    slas = sched.index.flow.sla
    if not slas or not _watched(sched):
        return
    violations: list[Violation] = []
    for position, sla in enumerate(slas):
        if not isinstance(sla, ExecutionAssertionSla):
            continue
        try:
            holds = truthy(render(sla.assert_, sched.variables(None), where=f"sla '{sla.id}'"))
        except TemplateError as error:
            violations.append((position, sla, f"assertion could not be evaluated: {error}"))
            continue
        if not holds:
            violations.append((position, sla, f"assertion is false: {sla.assert_}"))
    for violation in violations:
        _report(sched, violation)
    if violations:
        _act(sched, violations[0])


def on_deadline(sched: Scheduler, position: int) -> None:
    """A ``MAX_DURATION`` timer fell due: the execution has run longer than allowed."""
    slas = sched.index.flow.sla
    sla = slas[position] if position < len(slas) else None
    if not isinstance(sla, MaxDurationSla) or not _watched_or_queued(sched):
        return
    lasted = format_duration(sched.at - sched.state["created_at"])
    violation = (
        position,
        sla,
        f"execution duration of {lasted} exceeds the maximum duration of {sla.duration}",
    )
    _report(sched, violation)
    _act(sched, violation)


def _watched_or_queued(sched: Scheduler) -> bool:
    # A deadline counts from creation: an execution still queued for a slot is late too.
    return _watched(sched) or sched.status is ExecutionStatus.QUEUED


def _report(sched: Scheduler, violation: Violation) -> None:
    position, sla, reason = violation
    seen = sched.state.setdefault("sla_violated", [])
    if position in seen:
        return
    seen.append(position)
    sched.emit("sla.violated", sla_id=sla.id, type=sla.type, behavior=sla.behavior, reason=reason)


def _act(sched: Scheduler, violation: Violation) -> None:
    _, sla, reason = violation
    added = {k: v for k, v in sla.labels.items() if sched.state["labels"].get(k) != v}
    if added:
        sched.state["labels"].update(added)
        # The store keeps the labels column (what search filters on) in step with this event.
        sched.emit("execution.labeled", labels=added, sla_id=sla.id)
    if sla.behavior == "NONE":
        return
    _end(sched, sla, f"SLA '{sla.id}' violated: {reason}")


def _end(sched: Scheduler, sla: Sla, reason: str) -> None:
    """Kill what runs and end the execution FAILED or CANCELLED, as an Exit does."""
    failed = sla.behavior == "FAIL"
    # Runs started in this very step never reached a runtime: dropped, not killed.
    unsent = {a.task_run_id for a in sched.transition.actions if isinstance(a, RunTask)}
    sched.transition.actions = [
        a
        for a in sched.transition.actions
        if not (isinstance(a, RunTask) and a.task_run_id in unsent)
    ]
    for run_id in sched.state["inflight"]:
        if run_id not in unsent:
            sched.act(CancelTask(run_id, kill=True))
    sched.state["inflight"] = []
    going = [run for run in sched.runs.values() if run["state"] not in TERMINAL_TASK_STATES]
    if going:
        # Kestra's kill marks the last task run still going with the execution's new state.
        last = going[-1]
        sched.finish_run(
            last, T.FAILED if failed else T.CANCELLED, error=reason if failed else None
        )
    request: ExitRequest = {
        "state": "FAILED" if failed else "CANCELLED",
        "by": f"sla '{sla.id}'",
        "reason": reason,
    }
    sched.state["exit"] = request
    sched.end_exit()
