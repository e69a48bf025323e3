"""Approvals through ``AsyncClient`` and ``Client``: votes (review, approve, deny) and the inbox,
against a real server over HTTP, as people with keys of their own (a user and groups)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from pausepoint import AsyncClient, Client, Conflict, ExecutionView, Forbidden, InvalidInput
from tests.api.conftest import RunningServer

NS = "approvals.client"

RELEASE = f"""
id: release
namespace: {NS}
inputs:
  - id: version
    type: STRING
    defaults: "1.0"
tasks:
  - id: sign_off
    type: approval
    title: "Ship {{{{ inputs.version }}}}?"
    commentRequired: ON_DENY
    approvers:
      groups: [ops]
    inputs:
      - id: ticket
        type: STRING
        required: false
    onApprove:
      - id: shipped
        type: return
        format: "shipped {{{{ inputs.version }}}}"
"""


async def user_key(server: RunningServer, user: str, *groups: str) -> str:
    """An operator key that acts as ``user``, a member of ``groups`` (``keys create --user``)."""
    key, _ = await server.engine.as_org("acme").create_api_key(
        "operator", user, user=user, groups=groups
    )
    return key


@contextlib.asynccontextmanager
async def as_key(server: RunningServer, key: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.base_url, api_key=key) as client:
        yield client


@pytest.fixture
async def admin(server: RunningServer) -> AsyncIterator[AsyncClient]:
    """The organization's admin: applies the flow and starts the executions (in no group)."""
    async with as_key(server, server.keys["acme:admin"]) as client:
        await client.apply_flow(RELEASE)
        yield client


@pytest.fixture
async def alice(server: RunningServer, admin: AsyncClient) -> AsyncIterator[AsyncClient]:
    """A member of ``ops``, the approvers' group."""
    async with as_key(server, await user_key(server, "alice", "ops")) as client:
        yield client


async def waiting_for_approval(admin: AsyncClient, **labels: str) -> ExecutionView:
    started = await admin.start(NS, "release", inputs={"version": "2.1"}, labels=labels)
    view = await admin.wait(started.id, until="PAUSED", timeout=10)
    assert [p.kind for p in view.pause_points] == ["decision"], view
    return view


async def test_an_approval_through_the_client_completes_the_flow(
    admin: AsyncClient, alice: AsyncClient
) -> None:
    view = await waiting_for_approval(admin)
    result = await alice.approve(view.id, inputs={"ticket": "T-7"})
    assert result.execution_id == view.id
    assert result.pause_id == view.pause_points[0].id
    assert result.applied is not False
    ended = await admin.wait(view.id, timeout=10)
    assert ended.state == "COMPLETED", ended.error
    outputs = ended.task_run("sign_off").outputs or {}
    assert (outputs["decision"], outputs["by"], outputs["inputs"]) == (
        "APPROVED",
        "alice",
        {"ticket": "T-7"},
    )
    assert (ended.task_run("shipped").outputs or {})["value"] == "shipped 2.1"
    with pytest.raises(Conflict):  # decided: nothing is open to vote on
        await alice.approve(view.id)


async def test_a_deny_without_the_required_comment_names_the_comment(
    admin: AsyncClient, alice: AsyncClient
) -> None:
    view = await waiting_for_approval(admin)
    with pytest.raises(InvalidInput, match="needs a comment to deny") as refused:
        await alice.deny(view.id)
    assert [field.loc for field in refused.value.errors] == [("body", "comment")]
    assert (await admin.state(view.id)).state == "PAUSED"

    result = await alice.review(view.id, "DENIED", comment="not this week")
    assert result.applied is not False
    ended = await admin.wait(view.id, timeout=10)
    assert ended.state == "CANCELLED"  # the default denyBehavior
    outputs = ended.task_run("sign_off").outputs or {}
    assert (outputs["decision"], outputs["comment"]) == ("DENIED", "not this week")


async def test_a_bad_decision_or_input_is_invalid_input_naming_the_field(
    admin: AsyncClient, alice: AsyncClient
) -> None:
    view = await waiting_for_approval(admin)
    with pytest.raises(InvalidInput) as bad_decision:
        await alice.review(view.id, "maybe")  # type: ignore[arg-type]
    assert bad_decision.value.errors[0].loc[-1] == "decision"
    with pytest.raises(InvalidInput) as bad_input:
        await alice.approve(view.id, inputs={"nope": 1})
    assert bad_input.value.errors[0].loc[:2] == ("body", "inputs")
    with pytest.raises(Conflict, match="not open"):
        await alice.approve(view.id, pause_id="p-nope")


async def test_only_the_approvers_vote_and_each_once(
    server: RunningServer, admin: AsyncClient, alice: AsyncClient
) -> None:
    view = await waiting_for_approval(admin)
    with pytest.raises(Forbidden, match="not one of the approvers"):
        await admin.approve(view.id)
    async with as_key(server, server.keys["acme:viewer"]) as viewer:
        with pytest.raises(Forbidden):
            await viewer.approve(view.id)
    async with as_key(server, await user_key(server, "bob", "ops")) as bob:
        # A denial needs its comment; with it, bob's vote decides: alice votes too late.
        await bob.deny(view.id, comment="no")
    with pytest.raises(Conflict):
        await alice.approve(view.id)


async def test_the_inbox_lists_open_requests_with_what_each_caller_may_do(
    admin: AsyncClient, alice: AsyncClient
) -> None:
    view = await waiting_for_approval(admin, team="web")
    other = await waiting_for_approval(admin, team="data")

    mine = await alice.approvals(mine=True, namespace=NS)
    assert [item.execution_id for item in mine.items] == [view.id, other.id]  # oldest first
    assert mine.total == 2
    item = mine.items[0]
    assert (item.flow_id, item.task_id, item.pause_id) == ("release", "sign_off", "p-t1")
    assert item.request.title == "Ship 2.1?"
    assert item.request.approvers["groups"] == ["ops"]
    assert item.me.may_approve and item.me.may_deny and item.me.why_not is None

    # The admin is in no group: nothing is theirs to decide, and the inbox says why.
    assert (await admin.approvals(mine=True, namespace=NS)).items == []
    everyone = await admin.approvals(namespace=NS)
    assert {i.execution_id for i in everyone.items} == {view.id, other.id}
    assert all(not i.me.may_approve for i in everyone.items)
    assert everyone.items[0].me.why_not == "you are not one of its approvers"

    web = await alice.approvals(labels={"team": "web"}, flow_id="release")
    assert [i.execution_id for i in web.items] == [view.id]
    assert (await alice.approvals(namespace=NS, older_than="PT1H")).items == []
    page = await alice.approvals(namespace=NS, limit=1)
    assert (len(page.items), page.total) == (1, 2)
    with pytest.raises(InvalidInput, match="older_than"):
        await alice.approvals(older_than="an hour")

    await alice.approve(view.id)
    await admin.wait(view.id, timeout=10)
    left = await alice.approvals(mine=True, namespace=NS)
    assert [i.execution_id for i in left.items] == [other.id]


async def test_the_blocking_client_votes_and_reads_the_inbox(
    server: RunningServer, admin: AsyncClient
) -> None:
    view = await waiting_for_approval(admin)
    key = await user_key(server, "carol", "ops")

    def review_as_carol() -> list[str]:
        with Client(server.base_url, api_key=key) as client:
            inbox = client.approvals(mine=True, namespace=NS)
            with pytest.raises(InvalidInput, match="comment"):
                client.deny(view.id)
            client.approve(view.id, comment="ship it")
            return [item.execution_id for item in inbox.items]

    assert await asyncio.to_thread(review_as_carol) == [view.id]
    ended = await admin.wait(view.id, timeout=10)
    assert ended.state == "COMPLETED"
    assert (ended.task_run("sign_off").outputs or {})["comment"] == "ship it"
