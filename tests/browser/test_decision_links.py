"""Decision links in a browser no one signed in to: the page a link opens, its vote, and the
pages of links that cannot be used (altered, already used, for a decided request).

The links are minted with ``pausepoint.Client`` (the admin key), as a chat bot or a
mail relay would; each is then opened in a fresh browser context, with no key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, Response, expect

from pausepoint import Client, ExecutionView
from tests.browser.conftest import Server, screenshot

NAMESPACE = "ui.links"

# Two named people must both approve: a vote through a link leaves the request open.
RELEASE_FLOW = """
id: FLOW_ID
namespace: ui.links
tasks:
  - id: sign_off
    type: approval
    title: "Release TITLE"
    commentRequired: ON_DENY
    decisions:
      approve: Ship it
      deny: Hold
    approvers:
      users: [ALICE, BOB]
    quorum: 2
  - id: shipped
    type: return
    format: "{{ outputs.sign_off.decision }} by {{ outputs.sign_off.by }}"
"""


def client(server: Server) -> Client:
    return Client(server.base_url, api_key=server.keys["admin"])


def waiting_release(server: Server, alice: str, bob: str, title: str) -> ExecutionView:
    flow_id = f"release_{uuid.uuid4().hex[:8]}"
    source = (
        RELEASE_FLOW.replace("FLOW_ID", flow_id)
        .replace("TITLE", title)
        .replace("ALICE", alice)
        .replace("BOB", bob)
    )
    with client(server) as admin:
        admin.apply_flow(source)
        started = admin.start(NAMESPACE, flow_id)
        view = admin.wait(started.id, until="PAUSED", timeout=30)
    assert [point.kind for point in view.pause_points] == ["decision"], view
    return view


def opened(page: Page, url: str) -> Response:
    response = page.goto(url)
    assert response is not None, url
    return response


def assert_refused(page: Page, response: Response, status: int, why: str) -> None:
    """The page of a link that cannot be used: the reason, no form, nothing recorded."""
    assert response.status == status, response.status
    expect(page.get_by_role("heading", level=1)).to_have_text("This link cannot be used")
    expect(page.locator("#why")).to_contain_text(why)
    expect(page.get_by_text("Nothing was recorded.")).to_be_visible()
    expect(page.locator("form")).to_have_count(0)
    expect(page.locator("#approve, #deny")).to_have_count(0)


def votes(server: Server, execution_id: str) -> list[tuple[str, str]]:
    with client(server) as admin:
        commands = admin.audit(execution_id)
    return [(c.actor or "", c.reason or "") for c in commands if "vote" in (c.payload or {})]


def test_a_link_opened_without_a_key_votes_once_and_says_why_it_cannot_again(
    server: Server, new_context: Callable[..., BrowserContext]
) -> None:
    alice, bob = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("alice", "bob"))
    title = f"v{uuid.uuid4().hex[:6]}"
    view = waiting_release(server, alice, bob, title)
    execution_id, pause_id = view.id, view.pause_points[0].id
    with client(server) as admin:
        alice_link = admin.decision_link(execution_id, pause_id, alice, decision="approve")
        bob_link = admin.decision_link(execution_id, pause_id, bob, expires_in="PT1H")
    assert alice_link.url.startswith(f"{server.base_url}/decide/")

    # No one signed in: a fresh context has no key anywhere.
    page = new_context().new_page()

    # An altered link (one character of its token changed) shows why and records nothing.
    token = alice_link.token
    middle = len(token) // 3
    altered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    assert altered != token
    refused = opened(page, f"{server.base_url}/decide/{altered}")
    assert_refused(page, refused, 403, "this link is not valid")
    screenshot(page, "decision-link-altered")
    assert votes(server, execution_id) == []

    # The real link: the request, as whom, and the one button its decision allows.
    response = opened(page, alice_link.url)
    assert response.status == 200
    expect(page.locator("#approver")).to_have_text(alice)
    expect(page.get_by_text(f"Release {title}", exact=True)).to_be_visible()
    expect(page.get_by_text(f"You decide as {alice}.")).to_be_visible()
    expect(page.locator("#deny")).to_have_count(0)  # an approve link only approves
    approve = page.locator("#approve")
    expect(approve).to_have_text("Ship it")
    assert votes(server, execution_id) == []  # opening the page decided nothing
    screenshot(page, "decision-link")
    page.locator("#comment").fill("checked the changelog")
    approve.click()
    expect(page.locator("#done")).to_contain_text(f"{alice} approved: the vote was recorded")
    assert votes(server, execution_id) == [(alice, "decision link")]

    # The same link again: its approver has voted; the request is still open for bob.
    again = opened(page, alice_link.url)
    assert_refused(page, again, 409, f"this link was already used: {alice} voted approve")
    with client(server) as admin:
        assert admin.state(execution_id).state == "PAUSED"

    # Bob's review link shows alice's vote and both buttons; his approval decides.
    opened(page, bob_link.url)
    expect(page.locator("#approver")).to_have_text(bob)
    expect(page.get_by_text(f"{alice}: approve — checked the changelog")).to_be_visible()
    expect(page.locator("#deny")).to_have_text("Hold")
    page.locator("#approve").click()
    expect(page.locator("#done")).to_contain_text(f"{bob} approved")
    with client(server) as admin:
        ended = admin.wait(execution_id, timeout=30)
    assert ended.state == "COMPLETED", ended.error
    assert ended.task_run("shipped").outputs == {"value": f"APPROVED by {bob}"}
    outputs = ended.task_run("sign_off").outputs or {}
    assert [(v["by"], v.get("comment")) for v in outputs["votes"]] == [
        (alice, "checked the changelog"),
        (bob, None),
    ]

    # Once decided, every link to the request says it is no longer open.
    for link in (alice_link, bob_link):
        late = opened(page, link.url)
        assert_refused(page, late, 409, "this approval request is no longer open")
    assert votes(server, execution_id) == [(alice, "decision link"), (bob, "decision link")]
