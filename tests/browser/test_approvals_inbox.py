"""Approval requests in the UI: the header count, the inbox, the review form, bulk decide.

Every test has reviewers of its own (keys issued with ``--user``) named as approvers of
a flow of its own, so what is "waiting for me" is what the test opened, whatever else
the shared server holds.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Server, screenshot

NAMESPACE = "ui.approvals"

# An expense to sign off: a comment is needed to refuse; REVIEWERS decide, QUORUM of them.
EXPENSE_FLOW = """
id: FLOW_ID
namespace: ui.approvals
labels:
  suite: approvals
inputs:
  - id: amount
    type: INT
    defaults: 120
tasks:
  - id: prepare
    type: log
    message: "Preparing the payment of {{ inputs.amount }} EUR"
  - id: sign_off
    type: approval
    title: "Pay {{ inputs.amount }} EUR?"
    commentRequired: ON_DENY
    decisions:
      approve: Pay it
      deny: Refuse
    approvers:
      users: REVIEWERS
    quorum: QUORUM
    onApprove:
      - id: paid
        type: log
        message: paid
"""

# The same request, but approving it needs a cost center filled in on the review form.
COST_CENTER_FLOW = """
id: FLOW_ID
namespace: ui.approvals
tasks:
  - id: sign_off
    type: approval
    title: Book it on a cost center
    approvers:
      users: REVIEWERS
    inputs:
      - id: cost_center
        type: STRING
"""


def put_flow(server: Server, template: str, reviewers: list[str], quorum: int = 1) -> str:
    flow_id = f"expense_{uuid.uuid4().hex[:8]}"
    source = (
        template.replace("FLOW_ID", flow_id)
        .replace("REVIEWERS", "[" + ", ".join(reviewers) + "]")
        .replace("QUORUM", str(quorum))
    )
    with server.api() as client:
        client.put(
            f"/flows/{NAMESPACE}/{flow_id}",
            content=source,
            headers={"Content-Type": "application/x-yaml"},
        ).raise_for_status()
    return flow_id


@pytest.fixture
def reviewer(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], tuple[str, str]]:
    """Issue an operator key acting as a new person: returns (their name, the key)."""
    # The server fixture keeps its database beside the log that names its address.
    logs = tmp_path_factory.getbasetemp().glob("ui-server[0-9]*/server.log")
    (database,) = [
        log.parent / "pausepoint.db" for log in logs if server.base_url in log.read_text()
    ]

    def issue() -> tuple[str, str]:
        name = f"reviewer-{uuid.uuid4().hex[:8]}"
        command = [sys.executable, "-m", "pausepoint", "--db", str(database), "keys", "create"]
        command += ["--role", "operator", "--user", name, "--name", f"browser tests {name}"]
        created = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
        return name, created.stdout.strip().splitlines()[-1].strip()

    return issue


@pytest.fixture
def sign_in_with(
    server: Server, new_context: Callable[..., BrowserContext]
) -> Callable[[str], Page]:
    """A page signed in (through the form) with an API key."""

    def sign_in(key: str) -> Page:
        page = new_context().new_page()
        page.goto(server.base_url + "/")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#identity-text")).to_have_text("default · operator")
        return page

    return sign_in


def pause_id_of(server: Server, execution_id: str) -> str:
    with server.api() as client:
        (point,) = client.get(f"/executions/{execution_id}").json()["pause_points"]
    assert point["kind"] == "decision"
    pause_id: str = point["id"]
    return pause_id


def audit(server: Server, execution_id: str) -> list[dict[str, Any]]:
    with server.api() as client:
        commands: list[dict[str, Any]] = client.get(f"/executions/{execution_id}/audit").json()
    return commands


def inbox(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile(r"^Waiting for me")
    ).click()
    expect(page.get_by_role("heading", name="Waiting for me", level=1)).to_be_visible()


def test_a_request_for_me_counts_in_the_header_and_approving_it_in_the_inbox_completes_it(
    server: Server, reviewer: Callable[[], tuple[str, str]], sign_in_with: Callable[[str], Page]
) -> None:
    name, key = reviewer()
    flow_id = put_flow(server, EXPENSE_FLOW, [name])
    page = sign_in_with(key)
    count = page.locator("#approvals-count")
    expect(count).to_have_text("0")

    execution_id = server.start(NAMESPACE, flow_id)
    expect(count).to_have_text("1")  # live: the request opened after the page loaded

    inbox(page)
    row = page.locator(f'#approvals tr[data-execution-id="{execution_id}"]')
    expect(row).to_contain_text(f"{NAMESPACE}.{flow_id}")
    expect(row).to_contain_text("0 of 1 approval")
    expect(row).to_contain_text("Approve or deny")
    expect(row.locator("td[data-waiting]")).not_to_be_empty()
    # The age filter: a request opened seconds ago is not one waiting an hour.
    page.get_by_label("Age").select_option("PT1H")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#approvals")).to_contain_text("No open request matches these filters.")
    page.get_by_label("Age").select_option("")
    page.get_by_label("Flow").fill(flow_id)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#approvals tbody tr")).to_have_count(1)
    screenshot(page, "approvals-inbox")

    row.get_by_role("link", name="Pay 120 EUR?").click()
    expect(page.get_by_role("heading", name="Pay 120 EUR?", level=1)).to_be_visible()
    expect(page.locator("#review-context")).to_contain_text(f"{NAMESPACE}.{flow_id}")
    expect(page.locator("#review-context")).to_contain_text("suite:approvals")
    expect(page.locator("#review-inputs")).to_contain_text('"amount": 120')
    expect(page.locator('#review-task-runs li[data-task-id="prepare"]')).to_contain_text("SUCCESS")
    form = page.get_by_role("form", name="Review Pay 120 EUR?")
    expect(form.get_by_label("Comment")).to_be_visible()
    expect(form.get_by_role("button", name="Refuse")).to_be_enabled()
    form.get_by_label("Comment").fill("Budget checked with finance")
    screenshot(page, "approvals-review")
    form.get_by_role("button", name="Pay it").click()

    expect(page.locator("#review-decision")).to_contain_text(f"APPROVED by {name}")
    expect(page.locator("#review-decision")).to_contain_text("Budget checked with finance")
    expect(page.locator("#review-context")).to_contain_text("COMPLETED")
    expect(count).to_have_text("0")
    (vote,) = audit(server, execution_id)
    assert vote["actor"] == name
    assert vote["payload"]["vote"] == "approve"
    assert vote["payload"]["comment"] == "Budget checked with finance"


def test_a_deny_without_the_required_comment_is_refused_at_the_field_and_records_nothing(
    server: Server, reviewer: Callable[[], tuple[str, str]], sign_in_with: Callable[[str], Page]
) -> None:
    first, first_key = reviewer()
    second, second_key = reviewer()
    flow_id = put_flow(server, EXPENSE_FLOW, [first, second], quorum=2)
    execution_id = server.start(NAMESPACE, flow_id)
    pause_id = pause_id_of(server, execution_id)
    watcher = sign_in_with(first_key)
    watcher.goto(f"{server.base_url}/#/executions/{execution_id}")
    page = sign_in_with(second_key)
    page.goto(f"{server.base_url}/#/executions/{execution_id}")

    card = page.locator(f'#pause-points section.review[data-pause-id="{pause_id}"]')
    expect(card.get_by_role("heading", name="Pay 120 EUR?")).to_be_visible()
    for reviewing in (watcher, page):
        expect(reviewing.locator("#approvals-count")).to_have_text("1")
    comment = card.get_by_label("Comment (required to Refuse)")
    card.get_by_role("button", name="Refuse").click()

    expect(comment).to_have_attribute("aria-invalid", "true")
    error = card.locator(".field:has(textarea[name='comment']) .error")
    expect(error).to_have_text("a comment is required to deny")
    expect(comment).to_be_focused()
    expect(card.locator(".votes")).to_contain_text("No votes yet.")
    screenshot(page, "approvals-comment-required")
    assert audit(server, execution_id) == []
    assert server.state(execution_id) == "PAUSED"

    # A vote that is accepted shows on the other reviewer's page, live.
    comment.fill("Fine by me")
    card.get_by_role("button", name="Pay it").click()
    expect(card.locator(".standing")).to_have_text("You voted approve.")
    expect(page.locator("#approvals-count")).to_have_text("0")  # voted: nothing left to do
    watched = watcher.locator(f'#pause-points section.review[data-pause-id="{pause_id}"]')
    expect(watched.locator(f'.vote-list li[data-by="{second}"]')).to_contain_text("Fine by me")
    expect(watched.locator(".vote-count")).to_have_text("(1 of 2 approvals)")

    watched.get_by_label("Comment").fill("The supplier was paid twice last month")
    watched.get_by_role("button", name="Refuse").click()
    for reviewing in (watcher, page):
        expect(reviewing.locator("#execution-state")).to_have_text("CANCELLED")
        expect(reviewing.locator("#pause-points section.review")).to_have_count(0)
        expect(reviewing.locator("#approvals-count")).to_have_text("0")
    assert [command["actor"] for command in audit(server, execution_id)] == [second, first]


def test_bulk_approve_confirms_how_many_and_which_then_says_what_each_one_became(
    server: Server, reviewer: Callable[[], tuple[str, str]], sign_in_with: Callable[[str], Page]
) -> None:
    name, key = reviewer()
    flow_id = put_flow(server, EXPENSE_FLOW, [name])
    approved = [server.start(NAMESPACE, flow_id, amount=amount) for amount in (40, 75)]
    booked_flow = put_flow(server, COST_CENTER_FLOW, [name])
    needs_inputs = server.start(NAMESPACE, booked_flow)
    page = sign_in_with(key)
    expect(page.locator("#approvals-count")).to_have_text("3")
    inbox(page)

    chosen = [*approved, needs_inputs]
    for execution_id in chosen:
        row = page.locator(f'#approvals tr[data-execution-id="{execution_id}"]')
        row.get_by_role("checkbox").check()
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    page.get_by_role("button", name="Approve selected").click()

    dialog = page.get_by_role("dialog", name="Approve 3 requests?")
    for execution_id in chosen:
        expect(dialog.locator(f'#bulk-list li[data-execution-id="{execution_id}"]')).to_be_visible()
    expect(dialog.locator("#bulk-list")).to_contain_text("Pay 40 EUR?")
    expect(dialog.locator("#bulk-list")).to_contain_text("Book it on a cost center")
    dialog.get_by_label("Comment").fill("Quarter-end batch")
    screenshot(page, "approvals-bulk-confirm")
    dialog.get_by_role("button", name="Approve 3").click()
    expect(dialog).to_be_hidden()

    results = page.locator("#bulk-results")
    expect(results.get_by_role("heading")).to_have_text("Approve: 2 of 3 recorded")
    for execution_id in approved:
        done = results.locator(f'li[data-execution-id="{execution_id}"]')
        expect(done).to_have_attribute("data-outcome", "recorded")
    refused = results.locator(f'li[data-execution-id="{needs_inputs}"]')
    expect(refused).to_have_attribute("data-outcome", "refused")
    expect(refused).to_contain_text("required input 'cost_center' is missing")
    expect(page.locator("#approvals-count")).to_have_text("1")
    expect(page.locator("#approvals tbody tr")).to_have_count(1)
    screenshot(page, "approvals-bulk-results")

    for execution_id in approved:
        page.goto(f"{server.base_url}/#/executions/{execution_id}")
        expect(page.locator("#execution-state")).to_have_text("COMPLETED")
    assert audit(server, needs_inputs) == []

    # The one refused needs its form: the server's complaint shows at the input it names.
    inbox(page)
    page.get_by_role("link", name="Book it on a cost center").click()
    form = page.get_by_role("form", name="Review Book it on a cost center")
    form.get_by_role("button", name="Approve").click()
    cost_center = form.get_by_label("cost_center")
    expect(cost_center).to_have_attribute("aria-invalid", "true")
    expect(form.locator(".field:has(input[name='cost_center']) .error")).to_contain_text(
        "required input 'cost_center' is missing"
    )
    cost_center.fill("CC-4711")
    form.get_by_role("button", name="Approve").click()
    expect(page.locator("#review-decision")).to_contain_text(f"APPROVED by {name}")
    expect(page.locator("#approvals-count")).to_have_text("0")


def test_the_starter_sees_that_separation_of_duties_keeps_them_from_approving(
    server: Server, reviewer: Callable[[], tuple[str, str]], sign_in_with: Callable[[str], Page]
) -> None:
    name, key = reviewer()
    flow_id = put_flow(server, EXPENSE_FLOW, [name])
    with httpx.Client(
        base_url=f"{server.base_url}/api/v1", headers={"X-API-Key": key}, timeout=30
    ) as client:
        started = client.post("/executions", json={"namespace": NAMESPACE, "flow_id": flow_id})
        started.raise_for_status()
        execution_id: str = started.json()["id"]
    page = sign_in_with(key)
    expect(page.locator("#approvals-count")).to_have_text("1")  # they may still deny it
    inbox(page)

    row = page.locator(f'#approvals tr[data-execution-id="{execution_id}"]')
    expect(row).to_contain_text("Deny only — separation of duties: you started this execution")
    page.get_by_role("switch", name="All open requests, not only mine").check()
    expect(page.get_by_role("heading", name="Open approval requests", level=1)).to_be_visible()
    expect(row).to_contain_text("Deny only")
    row.get_by_role("link", name="Pay 120 EUR?").click()
    form = page.get_by_role("form", name="Review Pay 120 EUR?")
    expect(form.get_by_role("button", name="Pay it")).to_be_disabled()
    expect(form.get_by_role("button", name="Refuse")).to_be_enabled()
    expect(page.locator("#review .standing")).to_have_text(
        "You may not approve it (separation of duties: you started this execution);"
        " you may deny it."
    )
    expect(page.locator(f'#review .excluded-list li[data-user="{name}"]')).to_have_text(
        f"{name} — started this execution"
    )
    screenshot(page, "approvals-separation-of-duties")
