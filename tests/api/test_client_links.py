"""Decision links and callback tokens through ``AsyncClient`` and ``Client``: minted with a
key, used without one, against a real server over HTTP and a real SQLite file.

The server has no ``public_url``, so it answers with paths: the clients make them whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from pausepoint import AsyncClient, Client, Conflict, Forbidden, InvalidInput, NotFound
from pausepoint.client import CallbackOutcome, Expired, MintedCallback, MintedLink
from pausepoint.client.calls import callback_token
from pausepoint.service import callbacks as server_callbacks
from pausepoint.service import links as server_links
from pausepoint.service.callbacks import CallbackToken, sign_callback
from tests.api.conftest import RunningServer

NS = "links.client"

DEPLOY = f"""
id: deploy
namespace: {NS}
tasks:
  - id: review
    type: approval
    title: "Deploy {{{{ execution.id }}}}"
    commentRequired: ON_DENY
    approvers:
      users: [alice, bob]
  - id: done
    type: return
    format: "{{{{ outputs.review.decision }}}} by {{{{ outputs.review.by }}}}"
"""

# A payment the gate holds back; its settlement comes from another system's callback.
PAYMENT = f"""
id: payment
namespace: {NS}
tasks:
  - id: gate
    type: pause
  - id: settled
    type: pause
    onResume:
      - id: status
        type: SELECT
        values: [paid, refused]
      - id: amount
        type: INT
  - id: done
    type: return
    format: "{{{{ outputs.settled.onResume.status }}}} {{{{ outputs.settled.onResume.amount }}}}"
"""

BEATING = f"""
id: beating
namespace: {NS}
tasks:
  - id: work
    type: pause
    heartbeatTimeout: PT2S
"""


class RecordingTransport(httpx.AsyncBaseTransport):
    """The network, noting every request that goes out and the status it got."""

    def __init__(self) -> None:
        self.network = httpx.AsyncHTTPTransport()
        self.sent: list[httpx.Request] = []
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = await self.network.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self.network.aclose()


@pytest.fixture
async def admin(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.base_url, api_key=server.keys["acme:admin"]) as client:
        for flow in (DEPLOY, PAYMENT, BEATING):
            await client.apply_flow(flow)
        yield client


@pytest.fixture
async def anonymous(server: RunningServer) -> AsyncIterator[AsyncClient]:
    """A client made without an API key: what the system holding a callback has."""
    async with AsyncClient(server.base_url) as client:
        yield client


async def waiting(client: AsyncClient, flow_id: str) -> tuple[str, str]:
    """An execution of ``flow_id`` once paused; its id and its one open pause point's."""
    started = await client.start(NS, flow_id)
    view = await client.wait(started.id, until="PAUSED", timeout=30)
    (point,) = view.pause_points
    return started.id, point.id


def test_the_clients_models_have_the_servers_fields() -> None:
    for ours, theirs in (
        (MintedLink, server_links.MintedLink),
        (MintedCallback, server_callbacks.MintedCallback),
        (CallbackOutcome, server_callbacks.CallbackOutcome),
    ):
        assert list(ours.model_fields) == [f.name for f in dataclasses.fields(theirs)]


async def test_a_minted_link_votes_as_its_approver_with_no_key(
    server: RunningServer, admin: AsyncClient
) -> None:
    execution_id, pause_id = await waiting(admin, "deploy")
    link = await admin.decision_link(
        execution_id, pause_id, "alice", decision="approve", expires_in="PT2H"
    )
    assert (link.approver, link.action) == ("alice", "approve")
    assert link.url == f"{server.base_url}/decide/{link.token}"  # a path made whole
    async with httpx.AsyncClient() as browser:  # no key: the link is the credential
        page = await browser.get(link.url)
        assert page.status_code == 200, page.text
        assert "alice" in page.text and f"Deploy {execution_id}" in page.text
        voted = await browser.post(link.url, data={"decision": "approve"})
        assert voted.status_code == 200, voted.text
        assert "alice approved" in voted.text
    ended = await admin.wait(execution_id, timeout=30)
    assert ended.state == "COMPLETED", ended.error
    assert ended.task_run("done").outputs == {"value": "APPROVED by alice"}
    (vote,) = [c for c in await admin.audit(execution_id) if "vote" in (c.payload or {})]
    assert (vote.actor, vote.reason) == ("alice", "decision link")


async def test_the_blocking_client_mints_links_and_says_why_it_cannot(
    server: RunningServer, admin: AsyncClient
) -> None:
    execution_id, pause_id = await waiting(admin, "deploy")

    def mint() -> MintedLink:
        with Client(server.base_url, api_key=server.keys["acme:admin"]) as client:
            with pytest.raises(InvalidInput, match="expires_in") as bad:
                client.decision_link(execution_id, pause_id, "bob", expires_in="soon")
            assert bad.value.errors[0].loc == ("body", "expires_in")
            with pytest.raises(Conflict, match="no open approval request 'p-nope'"):
                client.decision_link(execution_id, "p-nope", "bob")
            return client.decision_link(execution_id, pause_id, "bob", decision="deny")

    # The server answers in this thread's event loop: the blocking client runs beside it.
    link = await asyncio.to_thread(mint)
    assert (link.approver, link.action) == ("bob", "deny")
    assert link.url.startswith(f"{server.base_url}/decide/")
    async with httpx.AsyncClient() as browser:
        page = await browser.get(link.url)
        assert "id='deny'" in page.text and "id='approve'" not in page.text

    async with AsyncClient(server.base_url, api_key=server.keys["acme:operator"]) as operator:
        with pytest.raises(Forbidden, match="admin"):
            await operator.decision_link(execution_id, pause_id, "alice")


async def test_a_callback_kept_before_its_task_waits_is_applied_when_it_does(
    admin: AsyncClient, anonymous: AsyncClient
) -> None:
    execution_id, gate = await waiting(admin, "payment")
    minted = await admin.callback(execution_id, "settled", expires_in="PT1H")
    assert minted.task_id == "settled"
    assert minted.url.endswith(f"/api/v1/callbacks/{minted.token}")
    assert minted.url.startswith(("http://", "https://"))

    kept = await anonymous.complete_callback(minted.url, {"status": "paid", "amount": "12"})
    assert (kept.status, kept.replayed) == ("kept", False)
    assert kept.inputs == {"status": "paid", "amount": 12}  # typed by the task's onResume
    assert (kept.execution_id, kept.task_id) == (execution_id, "settled")
    assert (await admin.state(execution_id)).state == "PAUSED"  # still at the gate

    await admin.resume(execution_id, pause_id=gate)
    ended = await admin.wait(execution_id, timeout=30)
    assert ended.state == "COMPLETED", ended.error
    assert ended.task_run("done").outputs == {"value": "paid 12"}
    settled = ended.task_run("settled").outputs or {}
    assert settled["resumed"]["by"] == "callback:settled"

    again = await anonymous.complete_callback(minted.token, {"status": "refused", "amount": 0})
    assert (again.status, again.replayed) == ("applied", True)
    assert again.inputs == {"status": "paid", "amount": 12}  # the first completion's


async def test_a_callback_completes_a_waiting_task_and_refusals_raise_their_class(
    server: RunningServer, admin: AsyncClient
) -> None:
    execution_id, gate = await waiting(admin, "payment")
    minted = await admin.callback(execution_id, "settled")
    with pytest.raises(NotFound, match="no Pause task 'nope'"):
        await admin.callback(execution_id, "nope")
    await admin.resume(execution_id, pause_id=gate)
    await admin.wait(
        execution_id,
        until=lambda v: any(p.task_id == "settled" for p in v.pause_points),
        timeout=30,
    )

    def complete() -> CallbackOutcome:
        with Client(server.base_url) as client:  # no key at all
            with pytest.raises(InvalidInput) as bad:
                client.complete_callback(minted.url, {"status": "maybe", "amount": 1})
            assert ("body", "status") in [error.loc for error in bad.value.errors]
            body, mac = minted.token.split(".")
            with pytest.raises(Forbidden, match="not valid"):
                client.complete_callback(f"{body}.{mac[::-1]}", {"status": "paid", "amount": 1})
            expired = sign_callback(
                CallbackToken("acme", execution_id, "settled", 1), server.engine.callback_key
            )
            with pytest.raises(Expired, match="expired"):
                client.complete_callback(expired, {"status": "paid", "amount": 1})
            return client.complete_callback(minted.url, {"status": "refused", "amount": 0})

    applied = await asyncio.to_thread(complete)
    assert (applied.status, applied.replayed) == ("applied", False)
    ended = await admin.wait(execution_id, timeout=30)
    assert ended.task_run("done").outputs == {"value": "refused 0"}

    # Another execution's wait that has ended refuses its callback.
    other, other_gate = await waiting(admin, "payment")
    late = await admin.callback(other, "gate")
    await admin.resume(other, pause_id=other_gate)
    await admin.wait(other, until=lambda v: v.task_run("gate").state != "PAUSED", timeout=30)
    with pytest.raises(Conflict):
        await admin.complete_callback(late.url, {})


BEATS = 10


async def test_heartbeats_send_no_key_and_keep_the_wait_alive(
    server: RunningServer, admin: AsyncClient
) -> None:
    execution_id, _ = await waiting(admin, "beating")
    minted = await admin.callback(execution_id, "work")
    transport = RecordingTransport()
    # A client holding a key still sends none with a callback's calls.
    async with AsyncClient(
        server.base_url, api_key=server.keys["acme:admin"], transport=transport
    ) as holder:
        for beat in range(BEATS):  # 2.5 s of heartbeats, past the 2 s heartbeatTimeout
            await holder.heartbeat(minted.url if beat % 2 else minted.token)
            await asyncio.sleep(0.25)
        assert (await holder.state(execution_id)).state == "PAUSED"
    beats = [r for r in transport.sent if r.url.path.endswith("/heartbeat")]
    assert len(beats) == BEATS
    assert transport.statuses[:BEATS] == [202] * BEATS
    assert all(r.url.path == f"/api/v1/callbacks/{minted.token}/heartbeat" for r in beats)
    assert not any("x-api-key" in r.headers or "authorization" in r.headers for r in beats)
    assert "x-api-key" in transport.sent[-1].headers  # the state request carried it

    ended = await admin.wait(execution_id, timeout=30)  # no more heartbeats
    assert ended.state == "FAILED"
    assert "no heartbeat" in (ended.error or "")


def test_a_callback_is_named_by_its_token_or_its_url() -> None:
    token = "eyJrIjoiY2FsbGJhY2sifQ.c2ln-_"
    assert callback_token(token) == token
    assert callback_token(f"https://pp.example.com/api/v1/callbacks/{token}") == token
    assert callback_token(f"/api/v1/callbacks/{token}/heartbeat") == token
    for wrong in ("", "https://pp.example.com/decide/abc", "https://pp.example.com/api/v1/"):
        with pytest.raises(ValueError, match=re.escape("callback")):
            callback_token(wrong)
