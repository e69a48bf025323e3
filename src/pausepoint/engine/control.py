"""Which control commands are legal, and what they become.

One set of rules serves two moments: the control plane *admits* a command
(against the last checkpoint plus the commands already accepted but not yet
applied) before it acknowledges it, and the engine *applies* it later against
the live state. Both call :func:`admit`; the engine rejects a command whose
premise no longer holds (say, the execution completed in between) and records
why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pausepoint.engine.approvals import check_vote, tally, vote_of
from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.model import Command, CommandKind, ExecutionStatus
from pausepoint.engine.state import PauseKind, StateData, Vote, engine_state
from pausepoint.errors import Conflict, FieldError, InvalidInput
from pausepoint.flow.inputs import InputSpec, coerce_inputs
from pausepoint.flow.model import ApprovalTask

S = ExecutionStatus


@dataclass(frozen=True)
class OpenPause:
    """An open pause point: a manual pause, or a Pause task waiting for a human."""

    id: str
    kind: PauseKind  # an approval is an agent's tool call waiting for a decision
    task_path: str | None = None
    task_id: str | None = None
    deadline: float | None = None
    inputs: tuple[InputSpec, ...] = ()  # an approval's own onResume inputs
    child: str | None = None  # a subflow wait's child execution
    votes: tuple[Vote, ...] = ()  # an approval task's request: the votes so far
    excluded: dict[str, str] = field(default_factory=dict)  # ... who may not approve


@dataclass(frozen=True)
class ControlView:
    """The control-relevant part of an execution's state."""

    execution_id: str
    status: ExecutionStatus
    pauses: dict[str, OpenPause] = field(default_factory=dict)
    stopping: bool = False  # cancel or terminate accepted
    callbacks: dict[str, str] = field(default_factory=dict)  # Pause task id -> its status

    @property
    def manual_pause(self) -> OpenPause | None:
        return next((p for p in self.pauses.values() if p.kind == "manual"), None)


def view_of(data: StateData) -> ControlView:
    """The control-relevant part of ``data``: its status, open pause points and stop."""
    state = engine_state(data)
    pauses = {
        pause_id: OpenPause(
            id=pause_id,
            kind=pause["kind"],
            task_path=pause.get("task_path"),
            task_id=pause.get("task_id"),
            deadline=pause.get("deadline"),
            inputs=tuple(InputSpec.model_validate(spec) for spec in pause.get("on_resume", ())),
            child=pause.get("child"),
            votes=tuple(pause.get("votes", ())),
            excluded=pause.get("excluded", {}),
        )
        for pause_id, pause in state["pauses"].items()
    }
    return ControlView(
        execution_id=state["execution_id"],
        status=S(state["status"]),
        pauses=pauses,
        stopping=state["stop"] is not None,
        callbacks={key: record["status"] for key, record in state.get("callbacks", {}).items()},
    )


def _describe(status: ExecutionStatus) -> str:
    return status.value.lower().replace("_", " ")


def on_resume_specs(index: FlowIndex, pause: OpenPause) -> list[InputSpec]:
    if pause.kind == "approval":
        return list(pause.inputs)
    if pause.kind == "decision" and pause.task_path is not None:
        return list(getattr(index.task(pause.task_path), "inputs", []))
    if pause.kind != "task" or pause.task_path is None:
        return []
    return list(getattr(index.task(pause.task_path), "on_resume", []))


def admit(view: ControlView, command: Command, index: FlowIndex) -> Command:
    """Check ``command`` against ``view``; return it with its payload normalised.

    Raises :class:`Conflict` (409) when the operation is not legal in the
    current state and :class:`InvalidInput` (422) for a bad payload, such as
    resume inputs that do not match the Pause task's ``onResume``.
    """
    kind = command.kind
    subject = f"execution {view.execution_id}"
    if view.status.is_terminal:
        action = "vote on" if "vote" in command.payload else kind
        raise Conflict(f"cannot {action} {_describe(view.status)} {subject}")
    if kind in (CommandKind.CANCEL, CommandKind.TERMINATE):
        return command
    if view.stopping and not (kind is CommandKind.RESUME and view.pauses):
        # The only pause points open while cancelling are Pause tasks in `finally`,
        # which must be resumable or the cancel could never finish.
        raise Conflict(f"cannot {kind} {subject}: it is being cancelled or terminated")
    if kind is CommandKind.INJECT:
        return command
    if kind is CommandKind.PAUSE:
        if view.status is S.PAUSING:
            raise Conflict(f"{subject} is already pausing")
        if view.manual_pause is not None:
            raise Conflict(f"{subject} is already paused")
        return command
    if "child_paused" in command.payload:
        return _admit_child_paused(view, command, subject)
    if "vote" in command.payload:
        return _admit_vote(view, command, index, subject)
    if "callback" in command.payload:
        return _admit_callback(view, command, index, subject)
    if "heartbeat" in command.payload:
        return _admit_heartbeat(view, command, subject)
    return _admit_resume(view, command, index, subject)


def _waiting_task(view: ControlView, task_id: str) -> OpenPause | None:
    return next(
        (p for p in view.pauses.values() if p.kind == "task" and p.task_id == task_id), None
    )


def _tool_call_decision(pause: OpenPause, command: Command) -> Command:
    """A vote on an agent's tool call: approve (with the arguments as edited), deny (the
    comment is the feedback the model reads) or respond (``inputs.response`` in place of
    the tool's result) — the resume of its pause point."""
    choice = command.payload.get("vote")
    decision = {"approve": "approve", "deny": "reject", "respond": "respond"}.get(str(choice))
    if decision is None:
        raise InvalidInput(
            f"a tool call is approved, denied or responded to, not {choice!r}",
            [FieldError(("body", "decision"), "approve, deny or respond")],
        )
    raw = {**(command.payload.get("inputs") or {}), "decision": decision}
    if command.payload.get("comment"):
        raw["reason"] = command.payload["comment"]
    values = coerce_inputs(list(pause.inputs), raw, loc_prefix=("body", "inputs"))
    return replace(command, payload={"pause_id": pause.id, "inputs": values})


def _admit_callback(view: ControlView, command: Command, index: FlowIndex, subject: str) -> Command:
    """A callback's completion of the Pause task it names: now, or kept until it waits."""
    task_id = command.payload["callback"]
    task = index.pause_task(task_id)
    if task is None:
        raise Conflict(f"{subject} has no Pause task {task_id!r}")
    status = view.callbacks.get(task_id)
    if status in ("kept", "applied"):
        raise Conflict(f"the callback of task '{task_id}' of {subject} was already completed")
    if status == "ended":
        raise Conflict(f"the wait of task '{task_id}' of {subject} already ended without it")
    specs = list(getattr(task, "on_resume", []))
    raw = command.payload.get("inputs") or {}
    if raw and not specs:
        raise InvalidInput(
            f"task '{task_id}' takes no inputs",
            [FieldError(("body",), f"task '{task_id}' takes no inputs")],
        )
    values = coerce_inputs(specs, raw, loc_prefix=("body",)) if specs else {}
    payload: dict[str, Any] = {"callback": task_id, "inputs": values}
    waiting = _waiting_task(view, task_id)
    if waiting is not None:
        payload["pause_id"] = waiting.id
    return replace(command, payload=payload)


def _admit_heartbeat(view: ControlView, command: Command, subject: str) -> Command:
    task_id = command.payload["heartbeat"]
    waiting = _waiting_task(view, task_id)
    if waiting is None:
        raise Conflict(f"task '{task_id}' of {subject} is not waiting: nothing to keep alive")
    return replace(command, payload={"heartbeat": task_id, "pause_id": waiting.id})


def _admit_vote(view: ControlView, command: Command, index: FlowIndex, subject: str) -> Command:
    """A vote on an approval task's open request (see ``engine/approvals.py``)."""
    requests = {key: p for key, p in view.pauses.items() if p.kind in ("decision", "approval")}
    pause_id = command.payload.get("pause_id")
    if pause_id is None:
        if not requests:
            raise Conflict(
                f"cannot vote on {subject}: it has no open approval request "
                "(it was decided, expired, or never opened)"
            )
        if len(requests) > 1:
            listed = ", ".join(f"{p.id} (approval {p.task_id})" for p in requests.values())
            raise InvalidInput(
                f"{subject} has several open approval requests; name one: {listed}",
                [
                    FieldError(
                        ("body", "pause_id"), f"required: several are open ({listed})", "missing"
                    )
                ],
            )
        pause = next(iter(requests.values()))
    else:
        found = requests.get(pause_id)
        if found is None:
            raise Conflict(
                f"cannot vote on {subject}: approval request {pause_id!r} is not open "
                f"(it was decided, expired, or never opened; open: {', '.join(requests) or 'none'})"
            )
        pause = found
    if pause.kind == "approval":
        return _tool_call_decision(pause, command)
    assert pause.task_path is not None
    task = index.task(pause.task_path)
    assert isinstance(task, ApprovalTask)
    payload = check_vote(
        task, pause.id, list(pause.votes), pause.excluded, command.payload, command.by
    )
    return replace(command, payload=payload)


def _admit_child_paused(view: ControlView, command: Command, subject: str) -> Command:
    """The control plane's word that children a pausing execution waits for have stopped
    (``child_paused``: their ids); those it no longer waits for are left out."""
    named = command.payload["child_paused"]
    if view.status is not S.PAUSING:
        raise Conflict(f"{subject} is {view.status.value}, not pausing")
    waited = {p.child for p in view.pauses.values() if p.kind == "subflow"}
    children = [child for child in named if child in waited]
    if not children:
        raise Conflict(f"{subject} does not wait for subflow executions {', '.join(named)}")
    return replace(command, payload={"child_paused": children})


def _admit_resume(view: ControlView, command: Command, index: FlowIndex, subject: str) -> Command:
    pause_id = command.payload.get("pause_id")
    inputs = command.payload.get("inputs") or {}
    release = bool(command.payload.get("release"))
    child = command.payload.get("child")
    if not view.pauses:
        raise Conflict(f"cannot resume {subject}: it is {view.status.value}, not paused")
    # A concurrency slot is the control plane's to give (a release), and so is a child's
    # end (it answers its subflow task's wait); people resume the rest.
    system_kind = "queue" if release else "subflow" if child is not None else None
    pauses = {
        key: p
        for key, p in view.pauses.items()
        if p.kind == system_kind or (system_kind is None and p.kind not in ("queue", "subflow"))
    }
    if not pauses:
        if release:
            raise Conflict(f"cannot release {subject}: it is not waiting for a concurrency slot")
        if child is not None:
            raise Conflict(f"{subject} is not waiting for a subflow execution")
        if any(p.kind == "subflow" for p in view.pauses.values()):
            raise Conflict(
                f"cannot resume {subject}: it is not paused, it waits for its subflow "
                "executions to end (resume those, or pause and resume this one)"
            )
        raise Conflict(
            f"{subject} waits for a free slot of its flow's concurrency limit; "
            "it starts by itself when one frees up (cancel it to drop it)"
        )
    if pause_id is None:
        if len(pauses) > 1:
            listed = ", ".join(
                f"{p.id} ({'manual pause' if p.kind == 'manual' else 'task ' + str(p.task_id)})"
                for p in pauses.values()
            )
            raise InvalidInput(
                f"{subject} has several open pause points; name one with pause_id: {listed}",
                [
                    FieldError(
                        ("body", "pause_id"),
                        f"required: several pause points are open ({listed})",
                        "missing",
                    )
                ],
            )
        pause = next(iter(pauses.values()))
    else:
        found = pauses.get(pause_id)
        if found is None:
            raise Conflict(
                f"cannot resume {subject}: pause point {pause_id!r} is not open "
                f"(open: {', '.join(pauses) or 'none'})"
            )
        pause = found
    if pause.kind == "decision":
        raise Conflict(
            f"pause point {pause.id} of {subject} is the approval request of task "
            f"'{pause.task_id}': approve or deny it (POST /api/v1/executions/"
            f"{view.execution_id}/review), it is not resumed"
        )
    specs = on_resume_specs(index, pause)
    if specs:
        values = coerce_inputs(specs, inputs, loc_prefix=("body", "inputs"))
    elif inputs:
        raise InvalidInput(
            f"pause point {pause.id} takes no inputs",
            [FieldError(("body", "inputs"), f"pause point {pause.id} takes no inputs")],
        )
    else:
        values = {}
    payload: dict[str, Any] = {"pause_id": pause.id, "inputs": values}
    if release:
        payload["release"] = True
    if child is not None:
        payload["child"] = child
    if "cascade" in command.payload:
        payload["cascade"] = bool(command.payload["cascade"])
    return replace(command, payload=payload)


def project(view: ControlView, command: Command, index: FlowIndex) -> ControlView:
    """The control view after ``command`` (already admitted) is applied."""
    if view.status.is_terminal:
        return view  # nothing brings a finished execution back
    kind = command.kind
    if kind is CommandKind.TERMINATE:
        return replace(view, status=S.TERMINATED, pauses={}, stopping=True)
    if kind is CommandKind.CANCEL:
        return replace(view, pauses={}, stopping=True, status=S.CANCELLING)
    if kind is CommandKind.PAUSE:
        pause = OpenPause(id=command.id, kind="manual")
        status = S.PAUSED if view.status in (S.QUEUED, S.PAUSED) else S.PAUSING
        return replace(view, status=status, pauses={**view.pauses, pause.id: pause})
    if kind is CommandKind.RESUME and "child_paused" in command.payload:
        return view  # a note: the execution stays pausing until its children have stopped
    if kind is CommandKind.RESUME and "heartbeat" in command.payload:
        return view
    if kind is CommandKind.RESUME and "callback" in command.payload:
        callbacks = {**view.callbacks, command.payload["callback"]: "kept"}
        if "pause_id" not in command.payload:
            return replace(view, callbacks=callbacks)
        view = replace(view, callbacks=callbacks)
    if kind is CommandKind.RESUME and "vote" in command.payload:
        pause = view.pauses[command.payload["pause_id"]]
        votes = (*pause.votes, vote_of(command.by, command.payload, command.at))
        assert pause.task_path is not None
        task = index.task(pause.task_path)
        assert isinstance(task, ApprovalTask)
        if tally(task, list(votes)) is None:
            pauses = {**view.pauses, pause.id: replace(pause, votes=votes)}
            return replace(view, pauses=pauses)
    if kind is CommandKind.RESUME:
        pauses = {k: v for k, v in view.pauses.items() if k != command.payload["pause_id"]}
        blocked = any(p.kind == "manual" for p in pauses.values())
        queued = any(p.kind == "queue" for p in pauses.values())
        status = view.status if blocked else S.QUEUED if queued else S.RUNNING
        return replace(view, status=status, pauses=pauses)
    return view
