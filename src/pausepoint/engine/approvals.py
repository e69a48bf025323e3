"""Approval tasks: the request, the votes, the decision and what follows it.

An approval run goes through stages: ``wait`` (its ``onWait`` tasks), the
open request (a pause point of kind ``decision``, the run PAUSED), then
``branch`` (``onApprove`` or ``onDeny``; none when it expired), ``errors`` and
``finally``. A vote is a resume command carrying ``vote``: the control plane
admitted it against the rules (:func:`check_vote`) before acknowledging it, and
the engine counts it here. The vote that completes the quorum, or the deny that
denies, decides, in the step that applies it; so the decision is reached once,
in the serial order the commands were accepted.

What the decision does to the execution is its behavior (Kestra's): CONTINUE
and WARN carry on, FAIL fails the approval, SUCCEED, CANCEL and KILL end the
execution (inside a loop iteration: the iteration) once what runs has finished
— KILL at once. A branch that failed is never hidden by a behavior.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pausepoint.engine.model import TERMINAL_TASK_STATES
from pausepoint.engine.model import TaskRunState as T
from pausepoint.engine.state import (
    PausePoint,
    TaskRun,
    Vote,
    index_output,
    iso,
    new_block,
    secret_input_values,
)
from pausepoint.errors import Conflict, FieldError, Forbidden, InvalidInput
from pausepoint.flow.inputs import coerce_inputs
from pausepoint.flow.model import ApprovalTask
from pausepoint.flow.templates import render

if TYPE_CHECKING:
    from pausepoint.engine.scheduler import Scheduler

Decision = Literal["APPROVED", "DENIED", "EXPIRED"]
VOTES = ("approve", "deny")
BEHAVIOR_EXIT = {"SUCCEED": "SUCCESS", "CANCEL": "CANCELLED", "KILL": "KILLED"}
BEHAVIOR_FIELD = {
    "APPROVED": "approveBehavior",
    "DENIED": "denyBehavior",
    "EXPIRED": "expireBehavior",
}
LINK_MARK = "[[pausepoint-link {pause} {user} {action}]]"


def pause_id_of(run: TaskRun) -> str:
    return f"p-{run['id']}"


def execution_url(sched: Scheduler) -> str:
    """The execution's page in the UI (absolute when the server knows its public URL)."""
    return f"{sched.env.public_url.rstrip('/')}/#/executions/{sched.state['execution_id']}"


# -- the stages ------------------------------------------------------------------------


def start_approval(sched: Scheduler, run: TaskRun, task: ApprovalTask) -> None:
    """Approve at once (``autoApprove``), run ``onWait``, or open the request."""
    auto = task.auto_approve
    if isinstance(auto, str):
        rendered = render(auto, sched.variables(run), where=f"task '{task.id}' autoApprove")
        auto = _truthy(rendered)
    sched.mark_started(run)
    if auto:
        outputs = {"decision": "APPROVED", "auto": True, "url": execution_url(sched)}
        _set_outputs(sched, run, outputs)
        sched.emit(
            "approval.decided",
            task_run_id=run["id"],
            task_id=task.id,
            decision="APPROVED",
            auto=True,
            by=None,
        )
        _begin_branch(sched, run, task, "APPROVED")
        return
    if task.on_wait:
        run["stage"] = "wait"
        run["block"] = new_block(f"{run['path']}.onWait", len(task.on_wait))
        return
    open_request(sched, run, task)


def open_request(sched: Scheduler, run: TaskRun, task: ApprovalTask) -> None:
    """Open the request: a ``decision`` pause point the votes answer."""
    pause_id = pause_id_of(run)
    deadline = sched.at + sched.duration(task.timeout, run) if task.timeout else None
    title = None
    if task.title is not None:
        title = str(render(task.title, sched.variables(run), where=f"task '{task.id}' title"))
    pause: PausePoint = {
        "kind": "decision",
        "task_path": run["path"],
        "task_id": task.id,
        "task_run_id": run["id"],
        "opened_at": sched.at,
        "deadline": deadline,
        "votes": [],
        "excluded": excluded_voters(sched, run),
    }
    if title is not None:
        pause["title"] = title
    run.pop("block", None)
    run["stage"] = "decide"
    run["state"] = T.PAUSED.value
    run["pause_id"] = pause_id
    outputs: dict[str, Any] = {"url": execution_url(sched)}
    if deadline is not None:
        outputs["due"] = iso(deadline)
    _set_outputs(sched, run, outputs)
    sched.state["pauses"][pause_id] = pause
    if deadline is not None:
        sched.set_timer("pause", deadline, pause_id=pause_id)
    sched.emit(
        "task.paused",
        task_run_id=run["id"],
        task_id=task.id,
        pause_id=pause_id,
        kind="decision",
        deadline=iso(deadline) if deadline is not None else None,
        title=title,
        on_resume=[spec.id for spec in task.inputs],
        decisions={"approve": task.decisions.approve, "deny": task.decisions.deny},
        quorum=task.quorum,
    )


def drive_approval(sched: Scheduler, run: TaskRun) -> None:
    """Advance an approval run through its stages (see the module's docstring)."""
    if run["state"] in TERMINAL_TASK_STATES or run["state"] == T.PAUSED:
        return
    task = sched.index.task(run["path"])
    assert isinstance(task, ApprovalTask)
    block = run.get("block")
    outcome = sched.drivenew_block(block, run) if block is not None else "success"
    if outcome == "running" or run["state"] in TERMINAL_TASK_STATES:
        return
    stage = run.get("stage", "branch")
    if outcome == "failed" and "failure" not in run:
        failed = sched.runs[block["failed"]] if block and block["failed"] else None
        run["failure"] = f"task '{failed['task_id']}' failed" if failed else "failed"
    if stage == "wait":
        if "failure" not in run or task.allow_failure:
            run.pop("failure", None)  # allowFailure: the request opens all the same (Kestra)
            open_request(sched, run, task)
            return
        stage = "tasks"  # onWait failed: errors, finally, and the approval fails
    elif stage == "branch":
        stage = "tasks"
    if sched.next_stage(run, stage):
        return
    if "failure" in run:
        sched.finish_run(run, T.FAILED, error=run["failure"], outputs=run.get("outputs"))
        return
    _conclude(sched, run, task)


def _begin_branch(sched: Scheduler, run: TaskRun, task: ApprovalTask, decision: Decision) -> None:
    run["stage"] = "branch"
    run["state"] = T.RUNNING.value
    if decision == "EXPIRED":
        run["block"] = new_block(None, 0)
    else:
        name = "onApprove" if decision == "APPROVED" else "onDeny"
        run["block"] = new_block(f"{run['path']}.{name}", len(task.blocks()[name]))
    sched.touch(run)


def _conclude(sched: Scheduler, run: TaskRun, task: ApprovalTask) -> None:
    """The branch (and errors, finally) ended well: the decision's behavior applies."""
    outputs = run.get("outputs") or {}
    decision: Decision = outputs["decision"]
    behavior = {
        "APPROVED": task.approve_behavior,
        "DENIED": task.deny_behavior,
        "EXPIRED": task.expire_behavior,
    }[decision]
    if behavior == "CONTINUE":
        sched.finish_run(run, T.WARNING if run.get("warn") else T.SUCCESS, outputs=outputs)
    elif behavior == "WARN":
        sched.finish_run(run, T.WARNING, outputs=outputs)
    elif behavior == "FAIL":
        error = f"approval '{task.id}' {decision.lower()}: its {BEHAVIOR_FIELD[decision]} is FAIL"
        sched.finish_run(run, T.FAILED, error=error, outputs=outputs)
    elif _in_iteration(sched, run):
        # In a loop the behavior ends the iteration, not the execution (as Kestra).
        sched.finish_run(run, T.SUCCESS if behavior == "SUCCEED" else T.CANCELLED, outputs=outputs)
    else:
        reason = (
            f"approval '{task.id}' {decision.lower()}: its {BEHAVIOR_FIELD[decision]} is {behavior}"
        )
        sched.exit(run, BEHAVIOR_EXIT[behavior], reason=reason, run_finally=behavior != "KILL")


def _in_iteration(sched: Scheduler, run: TaskRun) -> bool:
    parent = run["parent"]
    while parent is not None:
        owner = sched.runs[parent]
        if owner["type"] == "iteration":
            return True
        parent = owner["parent"]
    return False


def _set_outputs(sched: Scheduler, run: TaskRun, outputs: dict[str, Any]) -> None:
    run["outputs"] = outputs
    index_output(sched.state["outputs"], run)
    sched.touch(run)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


# -- votes and the decision ---------------------------------------------------------------


def apply_vote(sched: Scheduler, pause_id: str, vote: Vote) -> None:
    """Count an admitted vote; decide when it completes the quorum or denies."""
    pause = sched.state["pauses"][pause_id]
    task = sched.index.task(pause["task_path"])
    assert isinstance(task, ApprovalTask)
    # Later tasks read the real values; every view, event and audit masks SECRET ones.
    sched.remember_secret_values(secret_input_values(task.inputs, vote.get("inputs") or {}))
    pause.setdefault("votes", []).append(vote)
    sched.emit(
        "approval.voted",
        task_run_id=pause["task_run_id"],
        task_id=task.id,
        pause_id=pause_id,
        by=vote["by"],
        vote=vote["decision"],
        comment=vote.get("comment"),
        votes=len(pause["votes"]),
    )
    decision = tally(task, pause["votes"])
    if decision is not None:
        decide(sched, pause_id, decision, vote)


def expire(sched: Scheduler, pause_id: str) -> None:
    """The request's ``timeout`` passed without a decision."""
    decide(sched, pause_id, "EXPIRED", None)


def decide(sched: Scheduler, pause_id: str, decision: Decision, vote: Vote | None) -> None:
    pause = sched.close_pause(pause_id)
    run = sched.runs[pause["task_run_id"]]
    task = sched.index.task(run["path"])
    assert isinstance(task, ApprovalTask)
    votes = pause.get("votes", [])
    outputs: dict[str, Any] = {
        **(run.get("outputs") or {}),
        "decision": decision,
        "auto": False,
        "by": vote["by"] if vote else None,
        "on": iso(sched.at),
        "comment": vote.get("comment") if vote else None,
        "inputs": vote.get("inputs", {}) if vote else {},
        "votes": votes,
    }
    _set_outputs(sched, run, outputs)
    sched.emit(
        "approval.decided",
        task_run_id=run["id"],
        task_id=task.id,
        pause_id=pause_id,
        decision=decision,
        auto=False,
        by=outputs["by"],
        comment=outputs["comment"],
        votes=len(votes),
    )
    _begin_branch(sched, run, task, decision)
    sched.run_again_unless_held()


def tally(task: ApprovalTask, votes: list[Vote]) -> Decision | None:
    """The decision ``votes`` (in the order accepted) reach, or None while open.

    Approved once the quorum is met: that many approvals, or per group that many
    approvals by its members. Denied by one deny (``denyPolicy`` ANY), or once
    the denies are more than half the approvals the quorum needs (MAJORITY).
    """
    approvals = [vote for vote in votes if vote["decision"] == "approve"]
    denials = len(votes) - len(approvals)
    if isinstance(task.quorum, dict):
        met = all(
            sum(1 for vote in approvals if group in vote.get("groups", ())) >= needed
            for group, needed in task.quorum.items()
        )
    else:
        met = len(approvals) >= task.quorum
    if met:
        return "APPROVED"
    if task.deny_policy == "ANY":
        return "DENIED" if denials else None
    return "DENIED" if denials * 2 > task.required_approvals else None


def excluded_voters(sched: Scheduler, run: TaskRun) -> dict[str, str]:
    """Who may not approve this request under separation of duties, and why.

    The execution's starter, whoever resumed one of its Pause tasks, and
    whoever approved one of its earlier approvals.
    """
    excluded: dict[str, str] = {}
    starter = sched.state.get("started_by")
    if starter:
        excluded[starter] = "started this execution"
    for other in sched.runs.values():
        if other["id"] == run["id"]:
            continue
        outputs = other.get("outputs") or {}
        if other["type"] == "pause":
            by = (outputs.get("resumed") or {}).get("by")
            if by and by != "timer":
                excluded.setdefault(by, f"resumed the pause '{other['task_id']}'")
        elif other["type"] == "approval":
            for vote in outputs.get("votes") or []:
                if vote["decision"] == "approve":
                    excluded.setdefault(vote["by"], f"approved '{other['task_id']}'")
    return excluded


def eligible(task: ApprovalTask, voter: str, groups: list[str], role: str) -> list[str] | None:
    """The groups a vote of ``voter`` counts for, or None when they may not vote."""
    approvers = task.approvers
    counted = set(approvers.groups) | (set(task.quorum) if isinstance(task.quorum, dict) else set())
    mine = sorted(counted & set(groups))
    if not (approvers.users or counted or approvers.roles):
        return mine  # anyone who may control the execution
    if voter in approvers.users or mine or role in approvers.roles:
        return mine
    return None


def kept_from_approving(
    task: ApprovalTask, excluded: dict[str, str], voter: str, role: str
) -> str | None:
    """Why separation of duties keeps ``voter`` from approving (what they did), or None."""
    why = excluded.get(voter)
    if why is None or not task.separation_of_duties:
        return None
    if task.admin_override and role == "admin":
        return None
    return why


def check_vote(
    task: ApprovalTask,
    pause_id: str,
    votes: list[Vote],
    excluded: dict[str, str],
    payload: dict[str, Any],
    voter: str,
) -> dict[str, Any]:
    """Admit a vote against the rules; return its normalised payload.

    Raises ``Conflict`` (voted already), ``Forbidden`` (not an approver, or
    separation of duties) or ``InvalidInput`` (comment or inputs).
    """
    choice = payload.get("vote")
    if choice not in VOTES:
        raise InvalidInput(
            f"a vote is approve or deny, not {choice!r}",
            [FieldError(("body", "decision"), "approve or deny (APPROVED or DENIED)")],
        )
    where = f"approval '{task.id}'"
    earlier = next((vote for vote in votes if vote["by"] == voter), None)
    if earlier is not None:
        raise Conflict(f"{voter} already voted {earlier['decision']} on {where} at {earlier['on']}")
    role = str(payload.get("role") or "operator")
    groups = eligible(task, voter, list(payload.get("groups") or ()), role)
    if groups is None:
        raise Forbidden(f"{voter} is not one of the approvers of {where}")
    kept_out = kept_from_approving(task, excluded, voter, role)
    if choice == "approve" and kept_out is not None:
        raise Forbidden(f"separation of duties: {voter} {kept_out} and may not approve {where}")
    comment = payload.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 5000):
        raise InvalidInput(
            "the comment is text of at most 5000 characters",
            [FieldError(("body", "comment"), "text of at most 5000 characters")],
        )
    needed = task.comment_required
    if (not comment or not comment.strip()) and (
        needed == "ALWAYS"
        or (needed == "ON_DENY" and choice == "deny")
        or (needed == "ON_APPROVE" and choice == "approve")
    ):
        raise InvalidInput(
            f"{where} needs a comment to {choice}",
            [FieldError(("body", "comment"), f"a comment is required to {choice}", "missing")],
        )
    specs = task.inputs
    if choice == "deny":  # a denial need not fill in what only an approval uses
        specs = [spec.model_copy(update={"required": False}) for spec in specs]
    raw = payload.get("inputs") or {}
    if raw and not specs:
        raise InvalidInput(
            f"{where} takes no inputs",
            [FieldError(("body", "inputs"), f"{where} takes no inputs")],
        )
    values = coerce_inputs(specs, raw, loc_prefix=("body", "inputs")) if specs else {}
    return {
        "pause_id": pause_id,
        "vote": choice,
        "comment": comment,
        "inputs": values,
        "groups": groups,
        "role": role,
    }


def vote_of(command_by: str, payload: dict[str, Any], at: float) -> Vote:
    """The vote an admitted command records."""
    vote: Vote = {
        "by": command_by,
        "decision": payload["vote"],
        "on": iso(at),
        "groups": list(payload.get("groups") or ()),
    }
    if payload.get("comment"):
        vote["comment"] = payload["comment"]
    if payload.get("inputs"):
        vote["inputs"] = payload["inputs"]
    return vote


# -- what onWait tasks see ------------------------------------------------------------------


def approval_variables(sched: Scheduler, run: TaskRun) -> dict[str, Any] | None:
    """``approval.*`` for the tasks of an approval (its nearest enclosing one)."""
    parent = run["parent"]
    while parent is not None:
        owner = sched.runs[parent]
        if owner["type"] == "approval":
            task = sched.index.task(owner["path"])
            assert isinstance(task, ApprovalTask)
            pause = pause_id_of(owner)
            links = {
                user: {
                    action: LINK_MARK.format(pause=pause, user=user, action=action)
                    for action in ("approve", "deny", "review")
                }
                for user in task.approvers.users
            }
            return {"id": pause, "url": execution_url(sched), "links": links}
        parent = owner["parent"]
    return None
