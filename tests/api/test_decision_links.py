"""Decision links over HTTP: minted by an admin or by an onWait task, opened without a key.

A real server on loopback, a real SQLite file; the chat webhook an onWait task
posts the links to is a real HTTP server on loopback too.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from pausepoint.service.links import new_link, sign
from tests.api.conftest import RunningServer, running_server, serving

FLOW = """
id: deploy
namespace: links.tests
tasks:
  - id: review
    type: approval
    title: "Deploy {{ execution.id }}"
    commentRequired: ON_DENY
    approvers:
      users: [alice, bob]
    quorum: 1
  - id: done
    type: return
    format: "{{ outputs.review.decision }} by {{ outputs.review.by }}"
"""

NOTIFYING = """
id: notify
namespace: links.tests
inputs:
  - id: webhook
    type: STRING
tasks:
  - id: review
    type: approval
    approvers:
      users: [alice]
    onWait:
      - id: post
        type: http
        uri: "{{ inputs.webhook }}"
        method: POST
        body: "{{ approval.links | json }}"
"""


async def paused(server: RunningServer, flow: str = FLOW, **inputs: Any) -> tuple[str, str]:
    """Start the flow with the admin key; the execution and its open request's id."""
    engine = server.engine.as_org("acme")
    record = await engine.put_flow(flow)
    async with server.client() as client:
        started = await client.post(
            "/api/v1/executions",
            json={"namespace": record.namespace, "flow_id": record.flow_id, "inputs": inputs},
        )
        assert started.status_code in (200, 201), started.text
        execution_id = started.json()["id"]
    view = await engine.wait(execution_id, until=lambda v: v.state == "PAUSED", timeout=30)
    (point,) = view.pause_points
    assert point.kind == "decision"
    return execution_id, point.id


async def mint(
    server: RunningServer, execution_id: str, pause_id: str, **body: Any
) -> httpx.Response:
    async with server.client() as client:
        return await client.post(
            f"/api/v1/executions/{execution_id}/approvals/{pause_id}/links", json=body
        )


async def audit_votes(server: RunningServer, execution_id: str) -> list[Any]:
    commands = await server.engine.as_org("acme").audit(execution_id)
    return [c for c in commands if "vote" in (c.payload or {})]


async def test_a_link_approves_as_its_approver_without_a_key(server: RunningServer) -> None:
    execution_id, pause_id = await paused(server)
    minted = await mint(server, execution_id, pause_id, approver="alice", decision="approve")
    assert minted.status_code == 200, minted.text
    url = minted.json()["url"]
    token = url.rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        page = await anonymous.get(f"/decide/{token}")
        assert page.status_code == 200
        assert "alice" in page.text and "Deploy" in page.text
        assert await audit_votes(server, execution_id) == []  # opening decides nothing
        done = await anonymous.post(f"/decide/{token}", data={"decision": "approve"})
        assert done.status_code == 200, done.text
        assert "alice approved" in done.text
    view = await server.engine.as_org("acme").wait(execution_id, timeout=30)
    assert view.state == "COMPLETED"
    (vote,) = await audit_votes(server, execution_id)
    assert vote.actor == "alice"
    assert vote.reason == "decision link"
    done_run = next(r for r in view.task_runs if r.task_id == "done")
    assert done_run.outputs == {"value": "APPROVED by alice"}


async def _refused(server: RunningServer, token: str, status: int, why: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        for response in (
            await anonymous.get(f"/decide/{token}"),
            await anonymous.post(f"/decide/{token}", data={"decision": "approve"}),
        ):
            assert response.status_code == status, response.text
            assert re.search(why, response.text), response.text
            assert "Nothing was recorded" in response.text


async def test_a_tampered_link_is_refused(server: RunningServer) -> None:
    execution_id, pause_id = await paused(server)
    token = (await mint(server, execution_id, pause_id, approver="bob")).json()["token"]
    body, mac = token.split(".")
    other = (await mint(server, execution_id, pause_id, approver="alice")).json()["token"]
    await _refused(server, f"{other.split('.')[0]}.{mac}", 403, "altered")
    await _refused(server, f"{body}.{mac[:-2]}", 403, "altered")
    await _refused(server, "garbage", 403, "altered")
    assert await audit_votes(server, execution_id) == []


async def test_an_expired_link_is_refused(server: RunningServer) -> None:
    execution_id, pause_id = await paused(server)
    key = server.engine.link_key
    link = new_link("acme", execution_id, pause_id, "alice", "approve", 1.0)
    await _refused(server, sign(link, key), 410, "expired")
    assert await audit_votes(server, execution_id) == []


async def test_a_used_link_and_a_decided_request_are_refused(server: RunningServer) -> None:
    execution_id, pause_id = await paused(server)
    alice = (await mint(server, execution_id, pause_id, approver="alice")).json()["token"]
    bob = (await mint(server, execution_id, pause_id, approver="bob")).json()["token"]
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        first = await anonymous.post(f"/decide/{alice}", data={"decision": "approve"})
        assert first.status_code == 200
    await server.engine.as_org("acme").wait(execution_id, timeout=30)
    await _refused(server, alice, 409, "no longer open|already used")
    await _refused(server, bob, 409, "no longer open")
    assert len(await audit_votes(server, execution_id)) == 1


async def test_a_link_for_another_organization_finds_nothing(server: RunningServer) -> None:
    execution_id, pause_id = await paused(server)
    link = new_link("globex", execution_id, pause_id, "alice", "approve", 4e9)
    await _refused(server, sign(link, server.engine.link_key), 404, "not found")
    assert await audit_votes(server, execution_id) == []


async def test_a_link_for_the_starter_cannot_approve(server: RunningServer) -> None:
    engine = server.engine.as_org("acme")
    key, _ = await engine.create_api_key("operator", "alice's key", user="alice")
    record = await engine.put_flow(FLOW)
    async with httpx.AsyncClient(base_url=server.base_url, headers={"X-API-Key": key}) as alice:
        started = await alice.post(
            "/api/v1/executions", json={"namespace": record.namespace, "flow_id": record.flow_id}
        )
        execution_id = started.json()["id"]
    view = await engine.wait(execution_id, until=lambda v: v.state == "PAUSED", timeout=30)
    pause_id = view.pause_points[0].id
    token = (
        await mint(server, execution_id, pause_id, approver="alice", decision="approve")
    ).json()["token"]
    await _refused(server, token, 403, "separation of duties: alice started this execution")
    assert await audit_votes(server, execution_id) == []


async def test_a_deny_through_a_review_link_needs_its_comment(server: RunningServer) -> None:
    execution_id, pause_id = await paused(server)
    token = (await mint(server, execution_id, pause_id, approver="bob", decision="review")).json()[
        "token"
    ]
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        missing = await anonymous.post(f"/decide/{token}", data={"decision": "deny"})
        assert missing.status_code == 422
        assert "needs a comment to deny" in missing.text
        assert await audit_votes(server, execution_id) == []
        denied = await anonymous.post(
            f"/decide/{token}", data={"decision": "deny", "comment": "not today"}
        )
        assert denied.status_code == 200, denied.text
    view = await server.engine.as_org("acme").wait(execution_id, timeout=30)
    assert view.state == "CANCELLED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"approver": "alice smith"}, "approver"),
        ({"approver": "alice", "decision": "maybe"}, "decision"),
        ({"approver": "alice", "expires_in": "soon"}, "expires_in"),
    ],
)
async def test_bad_mint_requests_name_the_field(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    execution_id, pause_id = await paused(server)
    response = await mint(server, execution_id, pause_id, **body)
    assert response.status_code == 422, response.text
    assert field in response.text


async def test_only_admins_mint_links(server: RunningServer) -> None:
    execution_id, pause_id = await paused(server)
    async with server.client(role="operator") as operator:
        response = await operator.post(
            f"/api/v1/executions/{execution_id}/approvals/{pause_id}/links",
            json={"approver": "alice"},
        )
    assert response.status_code == 403


@pytest.fixture
async def chat() -> AsyncIterator[tuple[str, list[Any]]]:
    """A Slack-style incoming webhook on loopback: it keeps what is posted to it."""
    received: list[Any] = []
    app = FastAPI()

    @app.post("/hooks/approvals")
    async def hook(request: Request) -> dict[str, bool]:
        received.append(json.loads(await request.body()))
        return {"ok": True}

    async with serving(app) as (base_url, _):
        yield f"{base_url}/hooks/approvals", received


async def test_on_wait_posts_signed_links_to_a_chat_webhook(
    db_path: Path, chat: tuple[str, list[Any]]
) -> None:
    webhook, received = chat
    async with running_server(db_path, public_url="http://approvals.example") as server:
        execution_id, _ = await paused(server, NOTIFYING, webhook=webhook)
        (posted,) = received
        links = posted["alice"]
        assert set(links) == {"approve", "deny", "review"}
        assert all(url.startswith("http://approvals.example/decide/") for url in links.values())
        token = links["approve"].rsplit("/", 1)[1]
        async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
            done = await anonymous.post(f"/decide/{token}", data={"decision": "approve"})
            assert done.status_code == 200, done.text
        view = await server.engine.as_org("acme").wait(execution_id, timeout=30)
        assert view.state == "COMPLETED"
        approval = next(r for r in view.task_runs if r.task_id == "review")
        outputs = approval.outputs or {}
        assert outputs["by"] == "alice"
        assert outputs["url"].startswith("http://approvals.example/#/executions/")
