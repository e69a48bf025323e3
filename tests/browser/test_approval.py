"""Human approval end to end: start from the flow's form, resume from the generated form."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, screenshot


def test_vacation_approval_from_start_form_to_completion_seen_live_by_a_second_browser(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    approver = signed_in("admin")
    watcher = signed_in("operator")
    expect(watcher.locator("#executions")).to_be_visible()

    approver.get_by_role("link", name="Flows").click()
    approver.get_by_role("link", name="vacation_approval_process").click()
    expect(approver.locator("pre.yaml .y-key").first).to_have_text("id")
    approver.get_by_label("name", exact=True).fill("Ada Lovelace")
    approver.get_by_label("start_date").fill("2042-08-01")
    approver.get_by_label("end_date").fill("2042-08-15")
    screenshot(approver, "flow")
    webhook = approver.get_by_label("slack_webhook_uri")
    webhook.fill("not a link")
    approver.get_by_role("button", name="Start execution").click()
    expect(webhook).to_have_attribute("aria-invalid", "true")
    expect(approver.locator(".field:has(#input-slack_webhook_uri) .error")).to_contain_text(
        "expected a URI"
    )
    webhook.fill("")
    approver.get_by_role("button", name="Start execution").click()

    expect(approver.locator("#execution-state")).to_have_text("PAUSED")
    execution_id = approver.url.rpartition("/")[2]

    # The second browser's list shows the new execution, paused, without a reload.
    row = watcher.locator(f'#executions tr[data-id="{execution_id}"]')
    expect(row).to_have_attribute("data-state", "PAUSED")
    expect(row).to_contain_text("company.team.vacation_approval_process")
    screenshot(watcher, "executions")
    row.get_by_role("link", name=execution_id).click()
    expect(watcher.locator("#execution-state")).to_have_text("PAUSED")

    form = approver.locator('[data-pause-id="p-t1"] form')
    expect(form.get_by_label("approved")).to_be_checked()
    expect(form.get_by_label("reason")).to_have_value("Well-deserved vacation")
    expect(form.get_by_text("Whether to approve the request")).to_be_visible()
    form.get_by_label("approved").uncheck()
    form.get_by_label("reason").fill("The whole team is at the offsite that week")
    screenshot(approver, "resume-form")
    form.get_by_role("button", name="Resume").click()

    for page in (approver, watcher):
        expect(page.locator("#execution-state")).to_have_text("COMPLETED")
        resumed = page.locator('#task-runs li[data-task-id="wait_for_approval"] .resumed')
        expect(resumed).to_contain_text(re.compile(r"Resumed by key:[0-9a-f]+ at"))
        expect(page.locator("#resumed")).to_contain_text("offsite")
        expect(page.locator('#event-log li[data-type="workflow.completed"]')).to_have_count(1)
    screenshot(approver, "execution")


def test_resume_forms_show_server_validation_at_the_field_one_form_per_pause_point(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    execution_id = server.start("company.team", "parallel_approvals", contract="Globex lease")
    page = signed_in("operator")
    page.goto(f"{server.base_url}/#/executions/{execution_id}")
    expect(page.locator("#execution-state")).to_have_text("PAUSED")
    expect(page.locator("#pause-points section.pause-point")).to_have_count(2)

    finance = page.locator('[data-pause-id] form:has(input[name="budget"])')
    finance.get_by_label("approved").check()
    finance.get_by_label("budget").fill("a lot")
    finance.get_by_role("button", name="Resume").click()

    budget = finance.get_by_label("budget")
    expect(budget).to_have_attribute("aria-invalid", "true")
    error = finance.locator(".field:has(input[name='budget']) .error")
    expect(error).to_contain_text("integer")
    expect(page.locator("#execution-state")).to_have_text("PAUSED")  # not resumed
    screenshot(page, "resume-form-error")

    budget.fill("12000")
    finance.get_by_role("button", name="Resume").click()
    expect(page.locator("#pause-points section.pause-point")).to_have_count(1)

    legal = page.locator('[data-pause-id] form:has(input[name="notes"])')
    legal.get_by_label("approved").check()
    legal.get_by_role("button", name="Resume").click()

    expect(page.locator("#execution-state")).to_have_text("COMPLETED")
    expect(page.locator("#outcome")).to_contain_text("Globex lease: signed (budget 12000")


def test_every_input_type_gets_its_widget_and_reaches_the_task_typed(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    execution_id = server.start("ui.tests", "every_widget")
    page = signed_in("operator")
    page.goto(f"{server.base_url}/#/executions/{execution_id}")
    form = page.locator("[data-pause-id] form")
    expect(form.get_by_label("approved")).to_have_attribute("type", "checkbox")
    expect(form.get_by_label("seats")).to_have_attribute("inputmode", "numeric")
    expect(form.get_by_label("seats")).to_have_value("2")
    expect(form.get_by_label("day")).to_have_attribute("type", "date")
    expect(form.get_by_label("meeting")).to_have_attribute("type", "datetime-local")
    expect(form.get_by_label("at", exact=True)).to_have_attribute("type", "time")
    expect(form.get_by_label("tier")).to_have_value("silver")
    expect(form.get_by_role("group", name="regions").get_by_label("eu")).to_be_checked()
    expect(form.get_by_label("settings")).to_have_value('{\n  "retries": 3\n}')
    expect(form.get_by_label("contact")).to_have_attribute("type", "email")
    expect(form.get_by_label("token")).to_have_attribute("type", "password")
    expect(form.get_by_text("Starts with a capital letter")).to_be_visible()

    form.get_by_label("seats").fill("11")
    form.get_by_label("note").fill("lowercase")
    form.get_by_role("button", name="Resume").click()
    expect(form.locator(".field:has(#resume-p-t1-seats) .error")).to_have_text(
        "expected at most 10, got 11"
    )
    expect(form.locator(".field:has(#resume-p-t1-note) .error")).to_contain_text("pattern")
    expect(form.get_by_label("seats")).to_be_focused()

    form.get_by_label("seats").fill("3")
    form.get_by_label("note").fill("Quarterly review")
    form.get_by_label("ratio").fill("0.25")
    form.get_by_label("day").fill("2042-07-01")
    form.get_by_label("meeting").fill("2042-07-01T10:30")
    form.get_by_label("at", exact=True).fill("09:15")
    form.get_by_label("within").fill("PT45M")
    form.get_by_label("tier").select_option("gold")
    form.get_by_role("group", name="regions").get_by_label("apac").check()
    form.get_by_label("settings").fill('{"retries": 5, "notify": true}')
    form.get_by_label("tags").fill("alpha\nbeta")
    form.get_by_label("token").fill("hunter2")
    form.get_by_role("button", name="Resume").click()
    expect(page.locator("#execution-state")).to_have_text("COMPLETED")

    meeting = page.evaluate("new Date('2042-07-01T10:30').toISOString()")
    with server.api() as client:
        run = client.get(f"/executions/{execution_id}").json()["task_runs"][0]
    chosen = run["outputs"]["onResume"]
    assert chosen["seats"] == 3 and chosen["ratio"] == 0.25 and chosen["approved"] is False
    assert (chosen["day"], chosen["at"], chosen["within"]) == ("2042-07-01", "09:15:00", "PT45M")
    assert chosen["meeting"].replace("Z", "") == meeting.replace(".000Z", "")
    assert (chosen["tier"], chosen["regions"]) == ("gold", ["eu", "apac"])
    assert chosen["settings"] == {"retries": 5, "notify": True}
    assert chosen["tags"] == ["alpha", "beta"]
    assert chosen["note"] == "Quarterly review"
