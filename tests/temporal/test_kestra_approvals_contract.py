"""Kestra's Approval flows, to the outcomes Kestra's ApprovalTest states, on temporal+postgres.

The outcomes are the embedded runtime's tests (``tests/integration/test_kestra_approvals.py``)
run here; checked below them: the request's ``url`` starts with the server's public
URL, also after the workflow continued as new; a second decision is refused (with
Temporal's timing); a quorum of two is decided by the second vote, not the first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pausepoint.errors import Conflict
from pausepoint.runtime.temporal import TemporalRuntime
from pausepoint.runtime.temporal.messages import workflow_id
from pausepoint.service.engine import Engine
from tests.integration.test_kestra_approvals import (
    TIMEOUT,
    decide,
    test_an_expired_request_cancels_by_default,
    test_auto_approve_skips_the_wait,
    test_deny_behavior_kill_kills_running_siblings,
    test_the_decision_inputs_are_in_the_outputs,
    test_the_decision_runs_its_branch,
    the,
    until_paused,
)
from tests.temporal.conftest import running_worker, temporal_settings

__all__ = [
    "test_an_expired_request_cancels_by_default",
    "test_auto_approve_skips_the_wait",
    "test_deny_behavior_kill_kills_running_siblings",
    "test_the_decision_inputs_are_in_the_outputs",
    "test_the_decision_runs_its_branch",
]

PUBLIC_URL = "https://pausepoint.example.com"

QUORUM_OF_TWO = """\
id: quorum-of-two
namespace: approvals.temporal
tasks:
  - id: approval
    type: approval
    quorum: 2
    separationOfDuties: false
    onApprove:
      - id: approved
        type: log
        message: Approved
"""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC_URL}


async def test_the_url_starts_with_the_public_url_and_reaches_on_approve_tasks(
    engine: Engine,
) -> None:
    view = await until_paused(engine, "approval-url-merge.yaml")
    expected = f"{PUBLIC_URL}/#/executions/{view.id}"
    assert the(view, "approval").outputs["url"] == expected
    ended = await decide(engine, view, "approve")
    assert ended.state == "COMPLETED"
    assert the(ended, "approval").outputs["url"] == expected
    assert the(ended, "approved").outputs["value"] == expected


async def test_a_second_decision_is_refused_and_the_first_stands(engine: Engine) -> None:
    """ApprovalTest#shouldRefuseASecondDecisionOnTheSameTaskRun. The embedded runtime has
    usually finished the execution when the first vote returns; here its branch still runs
    as activities, so the refusal is that no request is open rather than that it ended."""
    view = await until_paused(engine, "approval-basic.yaml")
    await engine.vote(view.id, "approve", comment="ok", actor="reviewer")
    with pytest.raises(Conflict, match=r"cannot vote on completed execution|no open approval"):
        await engine.vote(view.id, "deny", comment="changed my mind", actor="someone-else")
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "COMPLETED"
    assert the(ended, "approval").outputs["decision"] == "APPROVED"
    assert the(ended, "approval").outputs["by"] == "reviewer"


async def test_a_quorum_of_two_is_decided_at_the_second_vote(engine: Engine) -> None:
    record = await engine.put_flow(QUORUM_OF_TWO)
    started = await engine.start_execution(record.namespace, record.flow_id)
    view = await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)

    first = await engine.vote(view.id, "approve", comment="one", actor="a")
    assert first.applied is True
    after_one = await engine.execution(view.id)
    assert after_one.state == "PAUSED"
    assert the(after_one, "approval").state == "PAUSED"
    (pause,) = after_one.pause_points
    assert pause.approval is not None
    assert [(v.by, v.decision) for v in pause.approval.votes] == [("a", "approve")]
    assert "approval.decided" not in [e.type for e in await engine.events(view.id)]

    await engine.vote(view.id, "approve", comment="two", actor="b")
    ended = await engine.wait(view.id, timeout=TIMEOUT)
    assert ended.state == "COMPLETED"
    outputs = the(ended, "approval").outputs
    assert outputs["decision"] == "APPROVED"
    assert outputs["by"] == "b"
    assert [vote["by"] for vote in outputs["votes"]] == ["a", "b"]
    assert the(ended, "approved").state == "SUCCESS"
    decided = [e for e in await engine.events(view.id) if e.type == "approval.decided"]
    assert len(decided) == 1


async def test_the_public_url_is_kept_when_the_workflow_continues_as_new(
    db_path: Path, temporal_address: str
) -> None:
    settings = temporal_settings(
        db_path, temporal_address, public_url=PUBLIC_URL, temporal_continue_as_new_after=20
    )
    steps = "".join(f"  - id: step{n}\n    type: return\n    format: '{n}'\n" for n in range(8))
    source = (
        "id: long-before-approval\nnamespace: approvals.temporal\ntasks:\n"
        + steps
        + "  - id: approval\n    type: approval\n"
    )
    async with Engine(settings, serve=True) as engine, running_worker(settings):
        record = await engine.put_flow(source)
        started = await engine.start_execution(record.namespace, record.flow_id)
        view = await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
        runtime = engine.runtime
        assert isinstance(runtime, TemporalRuntime)
        handle = runtime.client.get_workflow_handle(workflow_id(view.id))
        description = await handle.describe()
    first_run = description.raw_description.workflow_execution_info.first_run_id
    assert first_run and first_run != description.run_id  # it did continue as new
    assert the(view, "approval").outputs["url"] == f"{PUBLIC_URL}/#/executions/{view.id}"


CALLBACK_FLOW = """\
id: callback-on-temporal
namespace: approvals.temporal
tasks:
  - id: announce
    type: return
    format: "{{ callbacks.settled }}"
  - id: gate
    type: pause
  - id: settled
    type: pause
    onResume:
      - id: amount
        type: INT
  - id: done
    type: return
    format: "{{ outputs.settled.onResume.amount }}"
"""

LINKED_APPROVAL = """\
id: linked-approval
namespace: approvals.temporal
tasks:
  - id: approval
    type: approval
    approvers:
      users: [alice]
    onWait:
      - id: links
        type: return
        format: "{{ approval.links.alice.approve }}"
"""


async def test_a_callback_kept_before_its_task_waits_is_applied_on_temporal(
    engine: Engine,
) -> None:
    record = await engine.put_flow(CALLBACK_FLOW)
    started = await engine.start_execution(record.namespace, record.flow_id)
    view = await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    url = (the(view, "announce").outputs or {})["value"]
    assert url.startswith(f"{PUBLIC_URL}/api/v1/callbacks/")
    kept = await engine.complete_callback(url.rsplit("/", 1)[1], {"amount": "7"})
    assert kept.status == "kept"
    (gate,) = (await engine.execution(started.id)).pause_points
    await engine.resume(started.id, pause_id=gate.id)
    ended = await engine.wait(started.id, timeout=TIMEOUT)
    assert ended.state == "COMPLETED", ended.error
    assert (the(ended, "done").outputs or {})["value"] == 7
    again = await engine.complete_callback(url.rsplit("/", 1)[1], {"amount": "8"})
    assert again.replayed and again.inputs == {"amount": 7}


async def test_a_decision_link_signed_in_on_wait_votes_on_temporal(engine: Engine) -> None:
    record = await engine.put_flow(LINKED_APPROVAL)
    started = await engine.start_execution(record.namespace, record.flow_id)
    view = await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    link = (the(view, "links").outputs or {})["value"]
    assert link.startswith(f"{PUBLIC_URL}/decide/")
    page, _ = await engine.use_decision_link(link.rsplit("/", 1)[1], "approve", None, {})
    assert page.link.approver == "alice"
    ended = await engine.wait(started.id, timeout=TIMEOUT)
    assert ended.state == "COMPLETED", ended.error
    assert (the(ended, "approval").outputs or {})["by"] == "alice"
