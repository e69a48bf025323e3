"""Kestra's Approval test flows run unchanged to the outcomes Kestra's ApprovalTest states.

Each test names the test of kestra-io/kestra's
``core/src/test/java/io/kestra/plugin/core/flow/ApprovalTest.java`` it mirrors;
the flows are Kestra's (``tests/kestra/valids``, Apache-2.0). Kestra decides with
``ExecutionService.decide``; here the same decision is a vote through the public
``Engine.vote``. Kestra's KILLED execution is pausepoint's TERMINATED, its SUCCESS
execution COMPLETED, and its PAUSED task runs waiting for a decision are PAUSED.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pausepoint.errors import Conflict, InvalidInput
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
TIMEOUT = 30.0


async def start(engine: Engine, file_name: str, **inputs: object) -> ExecutionView:
    record = await engine.put_flow_file(VALIDS / file_name)
    started = await engine.start_execution(record.namespace, record.flow_id, inputs=inputs)
    return await engine.wait(
        started.id, until=lambda v: v.state in ("PAUSED", "COMPLETED"), timeout=TIMEOUT
    )


async def until_paused(engine: Engine, file_name: str, **inputs: object) -> ExecutionView:
    view = await start(engine, file_name, **inputs)
    assert view.state == "PAUSED", (view.state, view.error)
    return view


async def decide(
    engine: Engine, view: ExecutionView, decision: str, comment: str | None = "ok", **kw: object
) -> ExecutionView:
    await engine.vote(view.id, decision, comment=comment, actor="reviewer", **kw)  # type: ignore[arg-type]
    return await engine.wait(view.id, timeout=TIMEOUT)


def runs(view: ExecutionView, task_id: str) -> list[object]:
    return [r for r in view.task_runs if r.task_id == task_id and r.type != "iteration"]


def the(view: ExecutionView, task_id: str):  # type: ignore[no-untyped-def]
    (run,) = runs(view, task_id)
    return run


@pytest.mark.parametrize(
    ("decision", "branch", "comment"),
    [("approve", "approved", "looks good"), ("deny", "denied", "needs changes")],
)
async def test_the_decision_runs_its_branch(
    engine: Engine, decision: str, branch: str, comment: str
) -> None:
    """ApprovalTest#shouldRunOnApproveWhenApproved and #shouldRunOnDenyWhenDenied (Suite)."""
    view = await until_paused(engine, "approval-basic.yaml")
    assert the(view, "notify").state == "SUCCESS"
    assert the(view, "approval").state == "PAUSED"
    ended = await decide(engine, view, decision, comment)
    outputs = the(ended, "approval").outputs
    assert outputs["decision"] == ("APPROVED" if decision == "approve" else "DENIED")
    assert outputs["comment"] == comment
    assert outputs["by"] == "reviewer"
    assert "/executions/" in outputs["url"]
    assert len(runs(ended, branch)) == 1
    other = "denied" if branch == "approved" else "approved"
    assert runs(ended, other) == []
    # Approved: `last` runs and it succeeds; denied: the default denyBehavior CANCEL.
    assert ended.state == ("COMPLETED" if decision == "approve" else "CANCELLED")


async def test_an_approval_in_a_loop_that_expires_lets_the_execution_go_on(engine: Engine) -> None:
    """ApprovalTest#shouldContinueTheParentExecutionWhenAnApprovalInALoopIterationExpires."""
    view = await until_paused(engine, "approval-in-loop-expire.yaml")
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "COMPLETED"
    assert len(runs(ended, "last")) == 1
    assert the(ended, "approval").outputs["decision"] == "EXPIRED"


async def test_a_comment_is_required_always(engine: Engine) -> None:
    """ApprovalTest#shouldThrowWhenCommentRequiredAlwaysAndCommentMissing."""
    view = await until_paused(engine, "approval-comment-always.yaml")
    with pytest.raises(InvalidInput) as refused:
        await engine.vote(view.id, "approve", actor="reviewer")
    assert refused.value.errors[0].loc == ("body", "comment")
    still = await engine.execution(view.id)
    assert still.state == "PAUSED"


async def test_a_comment_required_on_deny_is_not_required_to_approve(engine: Engine) -> None:
    """ApprovalTest#shouldAllowApprovalWithoutCommentWhenCommentRequiredOnDeny and
    #shouldThrowWhenCommentRequiredOnDenyAndDenyingWithoutComment."""
    view = await until_paused(engine, "approval-comment-on-deny.yaml")
    with pytest.raises(InvalidInput):
        await engine.vote(view.id, "deny", actor="reviewer")
    ended = await decide(engine, view, "approve", comment=None)
    assert ended.state == "COMPLETED"


async def test_the_decision_inputs_are_in_the_outputs(engine: Engine) -> None:
    """ApprovalTest#shouldStoreDecisionInputsInOutputs."""
    view = await until_paused(engine, "approval-inputs.yaml")
    ended = await decide(engine, view, "approve", inputs={"reason": "urgent fix"})
    assert ended.state == "COMPLETED"
    assert the(ended, "approval").outputs["inputs"] == {"reason": "urgent fix"}


async def test_an_input_named_comment_is_an_input(engine: Engine) -> None:
    """approval-comment-input.yaml: an input may be called comment (no Kestra test states it)."""
    view = await until_paused(engine, "approval-comment-input.yaml")
    ended = await decide(engine, view, "approve", inputs={"comment": "from the form"})
    assert the(ended, "approval").outputs["inputs"] == {"comment": "from the form"}


async def test_an_empty_on_wait_pauses_at_once(engine: Engine) -> None:
    """ApprovalTest#shouldPauseImmediatelyWhenOnWaitIsEmpty."""
    view = await until_paused(engine, "approval-empty-wait.yaml")
    assert the(view, "approval").state == "PAUSED"


async def test_sibling_approvals_are_decided_independently(engine: Engine) -> None:
    """ApprovalTest#shouldPauseSiblingApprovalsIndependently."""
    view = await engine.wait(
        (await start(engine, "approval-parallel.yaml")).id,
        until=lambda v: (
            v.state == "PAUSED"
            and all(r.state == "PAUSED" for r in v.task_runs if r.task_id.startswith("approval"))
        ),
        timeout=TIMEOUT,
    )
    assert the(view, "approvalA").state == the(view, "approvalB").state == "PAUSED"
    pauses = {p.task_id: p.id for p in view.pause_points}
    await engine.vote(view.id, "approve", pause_id=pauses["approvalA"], comment="ok", actor="r")
    await engine.vote(view.id, "approve", pause_id=pauses["approvalB"], comment="ok", actor="r")
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "COMPLETED"
    assert len(runs(ended, "approvedA")) == len(runs(ended, "approvedB")) == 1


async def test_the_url_reaches_on_approve_tasks(engine: Engine) -> None:
    """ApprovalTest#shouldExposeUrlToOnApproveTasks."""
    view = await until_paused(engine, "approval-url-merge.yaml")
    ended = await decide(engine, view, "approve")
    assert ended.state == "COMPLETED"
    assert "/executions/" in the(ended, "approved").outputs["value"]


async def test_a_second_decision_is_refused(engine: Engine) -> None:
    """ApprovalTest#shouldRefuseASecondDecisionOnTheSameTaskRun."""
    view = await until_paused(engine, "approval-basic.yaml")
    await engine.vote(view.id, "approve", comment="ok", actor="reviewer")
    with pytest.raises(
        Conflict, match=r"cannot vote on completed execution|no open approval request"
    ):
        await engine.vote(view.id, "deny", comment="changed my mind", actor="someone-else")


async def test_auto_approve_skips_the_wait(engine: Engine) -> None:
    """ApprovalTest#shouldSkipWaitAndApproveAutomaticallyWhenAutoApproveIsTrue."""
    view = await start(engine, "approval-auto-approve.yaml")
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "COMPLETED"
    assert runs(ended, "notify") == []
    assert len(runs(ended, "approved")) == 1
    assert runs(ended, "denied") == []
    outputs = the(ended, "approval").outputs
    assert outputs["decision"] == "APPROVED"
    assert outputs["auto"] is True
    assert outputs.get("by") is None
    events = [e.type for e in await engine.events(view.id)]
    assert "workflow.paused" not in events


async def test_auto_approve_is_rendered_per_execution(engine: Engine) -> None:
    """ApprovalTest#shouldRenderAutoApprovePerExecutionNotFromAFirstRenderCache."""
    first = await start(engine, "approval-auto-approve-conditional.yaml", autoApprove=True)
    assert (await engine.wait(first.id, timeout=TIMEOUT)).state == "COMPLETED"
    second = await start(engine, "approval-auto-approve-conditional.yaml", autoApprove=False)
    assert second.state == "PAUSED"


@pytest.mark.parametrize("file_name", ["approval-expire.yaml", "approval-expire-no-finally.yaml"])
async def test_an_expired_request_cancels_by_default(engine: Engine, file_name: str) -> None:
    """ApprovalTest#shouldExpireWithDefaultBehaviorWhenTimeoutElapses and
    #shouldExpireWithDefaultBehaviorWhenNoFinallyIsConfigured."""
    view = await until_paused(engine, file_name)
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "CANCELLED"
    assert runs(ended, "approved") == runs(ended, "denied") == []
    approval = the(ended, "approval")
    outputs = approval.outputs
    assert outputs["decision"] == "EXPIRED"
    assert outputs["auto"] is False
    assert outputs.get("by") is None
    assert outputs["due"]
    if file_name == "approval-expire.yaml":
        cleanup = the(ended, "cleanup")
        assert cleanup.state == "SUCCESS"
        assert approval.ended_at >= cleanup.ended_at


async def test_a_decision_made_before_the_timeout_stands(engine: Engine) -> None:
    """ApprovalTest#shouldNotExpireADecisionAlreadyMadeWhileASiblingIsStillRunning."""
    view = await until_paused(engine, "approval-expire-parallel-sibling.yaml")
    ended = await decide(engine, view, "approve")
    assert ended.state == "COMPLETED"
    assert the(ended, "approval").outputs["decision"] == "APPROVED"
    assert len(runs(ended, "approved")) == 1


async def test_deny_cancels_by_default(engine: Engine) -> None:
    """ApprovalTest#shouldCancelExecutionOnDenyByDefault."""
    view = await until_paused(engine, "approval-deny-behavior-cancel.yaml")
    ended = await decide(engine, view, "deny", "no")
    assert ended.state == "CANCELLED"
    assert len(runs(ended, "denied")) == 1
    assert runs(ended, "after") == []


async def test_a_failing_branch_is_not_hidden_by_the_behavior(engine: Engine) -> None:
    """ApprovalTest#shouldNotHideAFailingBranchBehindTheConfiguredBehavior."""
    view = await until_paused(
        engine, "approval-approve-behavior-succeed-with-failing-onapprove.yaml"
    )
    ended = await decide(engine, view, "approve")
    assert ended.state == "FAILED"


async def _paused_beside_a_sleep(engine: Engine, file_name: str) -> ExecutionView:
    record = await engine.put_flow_file(VALIDS / file_name)
    started = await engine.start_execution(record.namespace, record.flow_id)
    return await engine.wait(
        started.id,
        until=lambda v: (
            any(r.task_id == "approval" and r.state == "PAUSED" for r in v.task_runs)
            and any(r.task_id == "sleep" and r.state == "RUNNING" for r in v.task_runs)
        ),
        timeout=TIMEOUT,
    )


async def test_deny_behavior_kill_kills_running_siblings(engine: Engine) -> None:
    """ApprovalTest#shouldKillRunningSiblingsWhenDenyBehaviorIsKill."""
    view = await _paused_beside_a_sleep(engine, "approval-deny-behavior-kill.yaml")
    ended = await decide(engine, view, "deny", "no")
    assert ended.state == "TERMINATED"  # Kestra's KILLED
    assert the(ended, "sleep").state == "CANCELLED"  # Kestra's KILLED task run


async def test_deny_behavior_cancel_lets_a_running_sibling_finish(engine: Engine) -> None:
    """ApprovalTest#shouldLetARunningSiblingFinishWhenDenyBehaviorIsCancel."""
    view = await _paused_beside_a_sleep(
        engine, "approval-deny-behavior-cancel-with-running-sibling.yaml"
    )
    ended = await decide(engine, view, "deny", "no")
    assert ended.state == "CANCELLED"
    assert the(ended, "sleep").state == "SUCCESS"


async def test_a_deny_cancels_even_when_a_sibling_is_approved(engine: Engine) -> None:
    """ApprovalTest#shouldCancelTheWholeExecutionEvenWhenASiblingApprovalIsApproved."""
    view = await engine.wait(
        (await start(engine, "approval-parallel.yaml")).id,
        until=lambda v: (
            all(r.state == "PAUSED" for r in v.task_runs if r.task_id in ("approvalA", "approvalB"))
            and len([r for r in v.task_runs if r.task_id in ("approvalA", "approvalB")]) == 2
        ),
        timeout=TIMEOUT,
    )
    pauses = {p.task_id: p.id for p in view.pause_points}
    await engine.vote(view.id, "deny", pause_id=pauses["approvalA"], comment="no", actor="r")
    # Kestra holds deniedA until B is decided too; here a decision's branch runs at once,
    # so the deny's CANCEL may end the execution first and the vote on B is refused.
    try:
        await engine.vote(view.id, "approve", pause_id=pauses["approvalB"], comment="ok", actor="r")
    except Conflict as refused:
        assert "cancel" in refused.message
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "CANCELLED"
    assert len(runs(ended, "deniedA")) == 1


async def test_approve_behavior_succeed_ends_the_execution(engine: Engine) -> None:
    """ApprovalTest#shouldSucceedTheWholeExecutionWhenApproveBehaviorIsSucceed."""
    view = await until_paused(engine, "approval-approve-behavior-succeed.yaml")
    ended = await decide(engine, view, "approve")
    assert ended.state == "COMPLETED"
    assert len(runs(ended, "approved")) == 1
    assert runs(ended, "after") == []


async def test_approve_behavior_fail_fails_through_the_flows_errors(engine: Engine) -> None:
    """ApprovalTest#shouldFailTheWholeExecutionThroughFlowLevelErrorsWhenApproveBehaviorIsFail."""
    view = await until_paused(engine, "approval-approve-behavior-fail.yaml")
    ended = await decide(engine, view, "approve")
    assert ended.state == "FAILED"
    assert len(runs(ended, "approved")) == 1
    assert the(ended, "approval").state == "FAILED"
    assert len(runs(ended, "cleanup")) == 1


async def test_a_failed_on_wait_runs_finally_once(engine: Engine) -> None:
    """ApprovalTest#shouldRunFinallyOnceWhenOnWaitFailsWithoutAllowFailure."""
    view = await start(engine, "approval-finally-fail.yaml")
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "FAILED"
    assert len(runs(ended, "cleanup")) == 1
    assert runs(ended, "approved") == runs(ended, "denied") == []


async def test_a_failed_on_wait_with_allow_failure_still_pauses(engine: Engine) -> None:
    """ApprovalTest#shouldPauseAndRunFinallyOnceWhenOnWaitFailsWithAllowFailure."""
    view = await until_paused(engine, "approval-finally-allow-failure.yaml")
    assert runs(view, "cleanup") == []
    ended = await decide(engine, view, "approve")
    assert ended.state in ("COMPLETED", "WARNING")
    assert len(runs(ended, "approved")) == 1
    assert len(runs(ended, "cleanup")) == 1


async def test_finally_runs_once_after_the_branch(engine: Engine) -> None:
    """ApprovalTest#shouldRunFinallyOnceAfterBranchOnSuccessPath."""
    view = await until_paused(engine, "approval-finally-success.yaml")
    assert runs(view, "cleanup") == []
    ended = await decide(engine, view, "approve")
    assert ended.state == "COMPLETED"
    assert len(runs(ended, "approved")) == 1
    assert len(runs(ended, "cleanup")) == 1


@pytest.mark.parametrize(
    ("file_name", "decision", "state"),
    [
        ("approval-flow-finally-deny.yaml", "deny", "CANCELLED"),
        ("approval-flow-finally-succeed.yaml", "approve", "COMPLETED"),
    ],
)
async def test_the_flows_finally_runs_after_a_decision_ends_it(
    engine: Engine, file_name: str, decision: str, state: str
) -> None:
    """The flow-finally flows (no Kestra test states their outcome): a behavior that ends
    the execution (CANCEL, SUCCEED) still runs the flow's finally; `after` never runs."""
    view = await until_paused(engine, file_name)
    ended = await decide(engine, view, decision)
    assert ended.state == state
    assert runs(ended, "after") == []
    assert the(ended, "cleanup").state == "SUCCESS"


async def test_the_flows_finally_runs_after_an_expiry(engine: Engine) -> None:
    view = await until_paused(engine, "approval-flow-finally-expire.yaml")
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "CANCELLED"
    assert runs(ended, "after") == []
    assert the(ended, "cleanup").state == "SUCCESS"


async def test_a_pause_and_an_approval_side_by_side(engine: Engine) -> None:
    """approval-pause-inputs-mix.yaml: the Pause is resumed, the Approval decided."""
    view = await engine.wait(
        (await start(engine, "approval-pause-inputs-mix.yaml")).id,
        until=lambda v: (
            {r.task_id for r in v.task_runs if r.state == "PAUSED"} == {"approval", "pause"}
        ),
        timeout=TIMEOUT,
    )
    pauses = {p.task_id: p.id for p in view.pause_points}
    with pytest.raises(Conflict, match="approve or deny"):
        await engine.resume(view.id, pause_id=pauses["approval"], inputs={})
    await engine.resume(view.id, pause_id=pauses["pause"], inputs={"ticket": "T-1"})
    await engine.vote(view.id, "approve", inputs={"reason": "fine"}, actor="r")
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "COMPLETED"
    assert the(ended, "approval").outputs["inputs"] == {"reason": "fine"}
