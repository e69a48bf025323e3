"""Approval requests as people see them: one request's view, and the inbox across executions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.state import redact_secret_inputs
from pausepoint.flow.model import ApprovalTask
from pausepoint.models import ApprovalRequestView, VoteView


def approval_request_view(index: FlowIndex, pause: dict[str, Any]) -> ApprovalRequestView:
    """An open ``decision`` pause point: its task's rules and the votes counted so far (an
    agent's tool call waiting for approval: one decision by anyone who may control it)."""
    if pause["kind"] == "approval":
        arguments = next(
            (
                spec.get("defaults")
                for spec in pause.get("on_resume", ())
                if spec["id"] == "arguments"
            ),
            None,
        )
        return ApprovalRequestView(
            title=f"Call the tool '{pause['task_id']}'",
            decisions={"approve": "Approve", "deny": "Reject", "respond": "Respond"},
            comment_required="NEVER",
            approvers={"users": [], "groups": [], "roles": []},
            quorum=1,
            deny_policy="ANY",
            separation_of_duties=False,
            tool_call={"tool": pause["task_id"], "arguments": arguments},
        )
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
        excluded=dict(pause.get("excluded") or {}) if task.separation_of_duties else {},
        votes=[
            VoteView(**{**vote, "inputs": redact_secret_inputs(task.inputs, vote["inputs"])})
            if vote.get("inputs")
            else VoteView(**vote)
            for vote in pause.get("votes") or []
        ],
    )


@dataclass(frozen=True)
class Reviewer:
    """Who asks: their name, groups and role (``assigned=me`` keeps what they may decide)."""

    user: str
    groups: tuple[str, ...] = ()
    role: str = "operator"
