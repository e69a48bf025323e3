"""Execution trees: a child's end reaches its parent, and control reaches the children.

A subflow task starts its child through the control plane (``taskcontrol.py``)
and waits on a ``subflow`` pause point. Everything else between a parent and
its children is done here, as commands through the control plane: durable
before they are acknowledged, applied once (their idempotency keys name the
child and the parent's command), audited under ``system:subflows`` or
``cascade:<parent id>``.

- **A child's end** is delivered to its waiting parent as a resume of that
  pause point carrying the child's state and outputs; the link records that
  the parent accepted it, so it is delivered until it is heard once.
- **A child's pause** is told to its pausing parent (``child_paused``, the
  children seen stopped since the last poll, in one command): a
  parent whose pause holds its subflows is PAUSED only once every child it
  waits for has stopped, so PAUSED means the whole tree has stopped.
- **Cascades** are level-triggered: the children a parent waits for are
  steered to what the parent's state says. A parent cancelled or terminated
  (or whose task no longer waits for the child) cancels or terminates them; a
  parent held by a manual pause pauses them (``cascade:<parent>``); once the
  hold is gone, the pauses the cascade made (and only those) are resumed.
  Right after a command is accepted on a parent, its children are steered;
  a sweep every ``SWEEP_EVERY`` polls completes whatever a crash interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pausepoint.engine.host import rebuild_state
from pausepoint.engine.model import TERMINAL_TASK_STATES, ExecutionStatus
from pausepoint.engine.state import subflow_wait_id
from pausepoint.errors import PausepointError, StoreUnavailable, TemplateError
from pausepoint.flow.model import SubflowTask
from pausepoint.flow.templates import render
from pausepoint.runtime.backoff import StoreBackoff
from pausepoint.service.auth import Principal
from pausepoint.service.requests import (
    CancelRequest,
    ControlRequest,
    PauseRequest,
    ResumeRequest,
    TerminateRequest,
)
from pausepoint.store.links import ExecutionLink
from pausepoint.store.records import ExecutionRecord

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine

log = logging.getLogger("pausepoint.subflows")

SUBFLOWS = "system:subflows"
SWEEP_EVERY = 10  # polls between two sweeps of every running child
AT_ONCE = 32  # commands to children (or ends to parents) in flight at once
STOP_GRACE = 5.0  # seconds a poll in progress may take to finish when the loop stops
S = ExecutionStatus


def cascader(parent_id: str) -> str:
    """Who a cascade's commands name: the parent they come from."""
    return f"cascade:{parent_id}"


@dataclass(frozen=True, kw_only=True)
class ChildEndedRequest(ResumeRequest):
    """A child execution ended: answer its parent's ``subflow`` pause point."""

    child: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "child": self.child}


@dataclass(frozen=True, kw_only=True)
class ChildPausedRequest(ResumeRequest):
    """Children a pausing execution waits for have stopped: the parent's pause may land
    once all have (PAUSED means the whole tree has stopped)."""

    children: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "child_paused": list(self.children)}


# -- a child's end ------------------------------------------------------------------------


async def deliver_ends(engine: Engine) -> int:
    """Tell waiting parents about the children that ended; how many were heard."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def deliver(parent: ExecutionRecord | None, link: ExecutionLink) -> bool:
        async with gate:
            try:
                return await _deliver_end(engine, parent, link)
            except PausepointError as error:
                log.warning("child %s: its end not delivered yet: %s", link.child_id, error.message)
                return False

    links = await engine.store.ended_unheard_children()
    by_parent: dict[str, list[ExecutionLink]] = defaultdict(list)
    for link in links:
        by_parent[link.parent_id].append(link)
    heard = 0
    for parent_id, children in by_parent.items():
        # One read of the parent for all its children that ended (a wide parent's state
        # holds a pause point per child).
        parent = await engine.store.get_execution(parent_id)
        results = await asyncio.gather(*(deliver(parent, link) for link in children))
        heard += sum(results)
    return heard


async def _deliver_end(engine: Engine, parent: ExecutionRecord | None, link: ExecutionLink) -> bool:
    store = engine.store
    child = await store.get_execution(link.child_id)
    now = engine.clock()
    if (
        parent is None
        or child is None
        or S(parent.status).is_terminal
        or child.state.get("retried_by") is not None  # its retry's end answers the parent
    ):
        await store.mark_child_heard(link.child_id, now)
        return True
    pause_id = subflow_wait_id(link.parent_task_run_id)
    pause = parent.state["pauses"].get(pause_id)
    # A retry by a new execution (CREATE_NEW_EXECUTION) answers for the child it retries.
    answers_for = (child.state.get("origin") or {}).get("id", link.child_id)
    if pause is None or pause.get("child") not in (link.child_id, answers_for):
        # Not waiting (yet): the parent has not taken in that its task started the
        # child, or the task ended another way (a timeout, an Exit).
        run = await _task_run(engine, parent.id, link.parent_task_run_id)
        if run is None or run["state"] in TERMINAL_TASK_STATES:
            await store.mark_child_heard(link.child_id, now)
            return True
        return False
    scoped = engine.as_org(link.org_id)
    request = ChildEndedRequest(
        execution_id=parent.id,
        pause_id=pause_id,
        child=await _child_result(scoped, child, parent, pause["task_path"]),
        actor=SUBFLOWS,
        wait=False,
    )
    await scoped.call(
        request,
        Principal(link.org_id, "operator", SUBFLOWS),
        idempotency_key=f"subflow-end:{link.child_id}",
    )
    await store.mark_child_heard(link.child_id, now)
    return True


async def _task_run(engine: Engine, execution_id: str, run_id: str) -> dict[str, Any] | None:
    runs = await engine.store.load_task_runs(execution_id)
    return next((run for run in runs if run["id"] == run_id), None)


async def _child_result(
    engine: Engine, child: ExecutionRecord, parent: ExecutionRecord, task_path: str
) -> dict[str, Any]:
    """``{id, state, outputs}`` of an ended child, as its parent's task records them.

    ``outputs`` are the child flow's outputs; a parent task with Kestra's
    deprecated ``outputs`` mapping (and a child flow declaring none) renders
    that mapping in the child's execution. ``error`` says why it could not.
    """
    result: dict[str, Any] = {
        "id": child.id,
        "state": child.status,
        "outputs": child.state.get("result") or {},
    }
    task = (await engine._env_for(parent)).index.task(task_path)
    if not isinstance(task, SubflowTask) or not task.outputs:
        return result
    child_index = (await engine._env_for(child)).index
    if child_index.flow.outputs:
        return result
    state = rebuild_state(child.state, await engine.store.load_task_runs(child.id))
    variables = {
        "outputs": state["outputs"],
        "inputs": state["inputs"],
        "labels": child.labels,
        "execution": {"id": child.id, "state": child.status},
        "flow": {"id": child.flow_id, "namespace": child.namespace},
    }
    try:
        result["outputs"] = render(task.outputs, variables, where=f"task '{task.id}' outputs")
    except TemplateError as error:
        result["error"] = f"its outputs could not be read: {error}"
    return result


# -- a child's pause ------------------------------------------------------------------------


async def deliver_pauses(engine: Engine) -> int:
    """Tell pausing parents which of the children they wait for have stopped (one
    command per parent for all its children seen stopped since the last poll)."""
    by_parent: dict[str, list[ExecutionLink]] = defaultdict(list)
    for link in await engine.store.stopped_children_of_pausing():
        by_parent[link.parent_id].append(link)
    told = 0
    for parent_id, links in by_parent.items():
        parent = await engine.store.get_execution(parent_id)
        if parent is None or parent.status != S.PAUSING:
            continue
        pauses = parent.state["pauses"]
        children = tuple(
            sorted(
                link.child_id
                for link in links
                if (pause := pauses.get(subflow_wait_id(link.parent_task_run_id))) is not None
                and pause.get("child") == link.child_id
                and not pause.get("settled")
            )
        )
        if not children:
            continue
        hold = next(iter(holding_pauses(parent.state, True)), "-")
        digest = hashlib.sha256("\n".join(children).encode()).hexdigest()[:16]
        request = ChildPausedRequest(
            execution_id=parent.id, children=children, actor=SUBFLOWS, wait=False
        )
        try:
            await engine.as_org(parent.org_id).call(
                request,
                Principal(parent.org_id, "operator", SUBFLOWS),
                # Once per hold and set of children: the next pause of the parent asks again.
                idempotency_key=f"subflow-paused:{hold}:{digest}",
            )
            told += len(children)
        except PausepointError as error:
            log.info("children of %s: their pause not told: %s", parent.id, error.message)
    return told


# -- cascades ------------------------------------------------------------------------------


async def steer_children(engine: Engine, parent_id: str) -> None:
    """Bring the children ``parent_id`` waits for in line with its state (a command on
    it was just accepted).

    With the database away, the cascade is left to the sweep of ``subflow_loop``,
    which steers every waiting child again once the store is back."""
    try:
        rows = await engine.store.children(parent_id)
        links = [row.link for row in rows if row.link.waits and not S(row.status).is_terminal]
        if not links:
            return
        parent = await engine.store.get_execution(parent_id)
        if parent is not None:
            await _steer(engine, parent, links)
    except StoreUnavailable as error:
        log.info("children of %s: cascade left to the next sweep: %s", parent_id, error.message)


async def sweep(engine: Engine) -> None:
    """Steer every running child a parent waits for (completes cascades a crash cut short)."""
    by_parent: dict[str, list[ExecutionLink]] = defaultdict(list)
    for link in await engine.store.running_attached_children():
        by_parent[link.parent_id].append(link)
    for parent_id, links in by_parent.items():
        parent = await engine.store.get_execution(parent_id)
        if parent is not None:
            await _steer(engine, parent, links)


@dataclass(frozen=True)
class _Steering:
    """What a parent's state asks of the children it waits for."""

    parent: ExecutionRecord
    stopping: bool  # cancelled, terminated, timed out or ended: its children must end too
    terminating: bool
    waited: frozenset[str]  # the children its subflow tasks still wait for
    holds: list[str]  # its manual pauses that hold its subflows
    release: bool  # the holds the cascade made may be resumed
    runs: dict[str, dict[str, Any]]  # its task runs (read only when a child is not waited)


async def _steer(engine: Engine, parent: ExecutionRecord, links: list[ExecutionLink]) -> None:
    state = parent.state
    policy = (await engine._env_for(parent)).index.flow.cascade
    stop = state.get("stop")
    terminating = parent.status == S.TERMINATED or (stop or {}).get("kind") == "terminate"
    if stop is not None and not stop.get(
        "cascade", policy.terminate if terminating else policy.cancel
    ):
        # Stopped without cascading: its subflows go on by themselves.
        for link in links:
            await engine.store.detach_child(link.child_id)
        return
    waited = frozenset(
        str(pause.get("child")) for pause in state["pauses"].values() if pause["kind"] == "subflow"
    )
    runs: dict[str, dict[str, Any]] = {}
    if any(link.child_id not in waited for link in links):
        runs = {run["id"]: run for run in await engine.store.load_task_runs(parent.id)}
    steering = _Steering(
        parent=parent,
        stopping=S(parent.status).is_terminal or stop is not None,
        terminating=terminating,
        waited=waited,
        holds=holding_pauses(state, policy.pause),
        release=policy.resume and not state.get("children_held"),
        runs=runs,
    )
    gate = asyncio.Semaphore(AT_ONCE)

    async def steer(link: ExecutionLink) -> None:
        async with gate:
            request, key = await _command_for(engine, steering, link)
            if request is not None:
                await _send(engine, parent, link, request, key)

    await asyncio.gather(*(steer(link) for link in links))


async def _command_for(
    engine: Engine, steering: _Steering, link: ExecutionLink
) -> tuple[ControlRequest | None, str | None]:
    """The command ``link``'s child needs to match its parent, and its idempotency key."""
    parent = steering.parent
    common: dict[str, Any] = {"execution_id": link.child_id}
    if steering.stopping:
        verb = "terminated" if steering.terminating else "cancelled"
        reason = f"parent execution {parent.id} was {verb}"
        cls: type[ControlRequest] = TerminateRequest if steering.terminating else CancelRequest
        return cls(reason=reason, **common), f"cascade-{verb}:{link.child_id}"
    if link.child_id not in steering.waited:
        run = steering.runs.get(link.parent_task_run_id)
        if run is None or run["state"] in TERMINAL_TASK_STATES:
            reason = f"its subflow task in execution {parent.id} no longer waits for it"
            return CancelRequest(reason=reason, **common), f"cascade-ended:{link.child_id}"
    if not steering.holds and not (steering.release and link.child_id in steering.waited):
        return None, None
    child = await engine.store.get_execution(link.child_id)
    if child is None or S(child.status).is_terminal:
        return None, None
    if steering.holds:
        return _pause_child(parent, child, steering.holds[0], common)
    return _release_child(parent, child, common)


def holding_pauses(state: dict[str, Any], by_default: bool) -> list[str]:
    """The manual pauses of an execution that hold its subflows (``by_default``: the flow's
    policy, for a pause whose request did not say)."""
    return [
        pause_id
        for pause_id, pause in state["pauses"].items()
        if pause["kind"] == "manual" and pause.get("cascade", by_default)
    ]


def _pause_child(
    parent: ExecutionRecord, child: ExecutionRecord, hold: str, common: dict[str, Any]
) -> tuple[ControlRequest | None, str | None]:
    if any(pause.get("by") == cascader(parent.id) for pause in child.state["pauses"].values()):
        return None, None  # already held by this parent
    reason = f"parent execution {parent.id} is paused"
    return PauseRequest(reason=reason, **common), f"cascade-pause:{hold}:{child.id}"


def _release_child(
    parent: ExecutionRecord, child: ExecutionRecord, common: dict[str, Any]
) -> tuple[ControlRequest | None, str | None]:
    """Resume the child's pause the cascade made (never its own Pause task or a person's)."""
    held = [
        pause_id
        for pause_id, pause in child.state["pauses"].items()
        if pause["kind"] == "manual" and pause.get("by") == cascader(parent.id)
    ]
    if not held:
        return None, None
    reason = f"parent execution {parent.id} was resumed"
    return ResumeRequest(pause_id=held[0], reason=reason, **common), f"cascade-resume:{held[0]}"


async def _send(
    engine: Engine,
    parent: ExecutionRecord,
    link: ExecutionLink,
    request: ControlRequest,
    key: str | None,
) -> None:
    principal = Principal(link.org_id, "operator", cascader(parent.id))
    # The key goes to the command only, not to the chain's reservation: a reservation a
    # killed process left would hold every later sweep up until it is taken for abandoned,
    # while the command's own key already makes a repeated cascade a replay.
    request = replace(request, idempotency_key=key)
    try:
        await engine.as_org(link.org_id).call(request, principal)
    except PausepointError as error:
        # Recorded and retried by the next sweep; shown in the parent's children.
        log.warning(
            "cascade from %s to %s (%s): %s",
            parent.id,
            link.child_id,
            request.kind,
            error.message,
        )
        await engine.store.note_cascade_error(link.child_id, f"{request.kind}: {error.message}")


# -- the loop ------------------------------------------------------------------------------


async def subflow_loop(engine: Engine) -> None:
    """Deliver children's ends and pauses every poll interval, sweep cascades every few
    polls. Stopping it lets a poll in progress finish (up to ``STOP_GRACE`` seconds), so
    that no store call is cut off halfway and its connection left open."""
    polls = 0
    backoff = StoreBackoff("subflows: delivering ends and cascading")
    while True:
        work = asyncio.ensure_future(_poll(engine, backoff, sweeping=polls % SWEEP_EVERY == 0))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(work, STOP_GRACE)
            raise
        polls += 1
        await asyncio.sleep(engine.settings.poll_interval)


async def _poll(engine: Engine, backoff: StoreBackoff, *, sweeping: bool) -> None:
    try:
        await deliver_ends(engine)
        await deliver_pauses(engine)
        if sweeping:
            await sweep(engine)
    except StoreUnavailable as error:
        # Logged once per outage; the next poll tries again, and nothing is lost: ends
        # and cascades are found again from the store.
        backoff.note(error)
        return
    except Exception:
        log.exception("subflows: delivering ends or cascading failed; retrying")
    backoff.recovered()
