"""Approval requests as people see them: one request's view, and the inbox across executions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pausepoint.engine.flowindex import FlowIndex
from pausepoint.flow.model import ApprovalTask
from pausepoint.models import ApprovalRequestView, VoteView


def approval_request_view(index: FlowIndex, pause: dict[str, Any]) -> ApprovalRequestView:
    """An open ``decision`` pause point: its task's rules and the votes counted so far."""
    task = index.task(pause["task_path"])
    assert isinstance(task, ApprovalTask)
    approvers = task.approvers
    return ApprovalRequestView(
        title=pause.get("title"),
        decisions={"approve": task.decisions.approve, "deny": task.decisions.deny},
        comment_required=task.comment_required,
        approvers={
            "users": list(approvers.users),
            "groups": list(approvers.groups),
            "roles": list(approvers.roles),
        },
        quorum=task.quorum,
        deny_policy=task.deny_policy,
        separation_of_duties=task.separation_of_duties,
        excluded=dict(pause.get("excluded") or {}),
        votes=[VoteView(**vote) for vote in pause.get("votes") or []],
    )


@dataclass(frozen=True)
class Reviewer:
    """Who asks: their name, groups and role (``assigned=me`` keeps what they may decide)."""

    user: str
    groups: tuple[str, ...] = ()
    role: str = "operator"
