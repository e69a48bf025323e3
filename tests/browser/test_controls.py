"""Pause, resume, inject and terminate from an execution's page; bulk control from the list."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, screenshot


def test_pause_resume_inject_terminate_from_the_page_seen_live_by_a_second_browser(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    execution_id = server.start("ui.tests", "slow_steps")
    operator = signed_in("operator")
    watcher = signed_in("admin", color_scheme="dark")
    for page in (operator, watcher):
        page.goto(f"{server.base_url}/#/executions/{execution_id}")
        expect(page.locator("#execution-state")).to_have_text("RUNNING")
    controls = operator.get_by_role("toolbar", name="Control this execution")
    expect(controls.get_by_role("button", name="Resume")).to_be_disabled()

    controls.get_by_role("button", name="Pause").click()
    for page in (operator, watcher):
        expect(page.locator("#execution-state")).to_have_text("PAUSED")
    expect(controls.get_by_role("button", name="Pause")).to_be_disabled()
    expect(watcher.locator("#pause-points")).to_contain_text("Paused by request")
    screenshot(watcher, "execution-paused-dark")

    controls.get_by_role("button", name="Resume").click()
    for page in (operator, watcher):
        expect(page.locator("#execution-state")).to_have_text("RUNNING")
        expect(page.locator('#event-log li[data-type="workflow.resumed"]')).to_have_count(1)

    operator.get_by_label("Message", exact=True).fill("Use the staging database from now on")
    operator.get_by_label("Role", exact=True).select_option("system")
    operator.get_by_role("button", name="Inject", exact=True).click()
    for page in (operator, watcher):
        message = page.locator("#context-messages li").filter(has_text="staging database")
        expect(message).to_contain_text(re.compile(r"system · key:[0-9a-f]+"))

    controls.get_by_role("button", name="Terminate").click()
    dialog = operator.get_by_role("dialog", name="Terminate this execution?")
    dialog.get_by_role("button", name="Terminate").click()
    expect(dialog.get_by_role("alert")).to_have_text("Give a reason to terminate.")
    dialog.get_by_label("Reason").fill("Runaway job: stopping it before it bills more")
    dialog.get_by_role("button", name="Terminate").click()
    expect(dialog).to_be_hidden()
    for page in (operator, watcher):
        expect(page.locator("#execution-state")).to_have_text("TERMINATED")
        terminated = page.locator('#event-log li[data-type="workflow.terminated"]')
        expect(terminated).to_contain_text("Runaway job")
    expect(controls).to_be_hidden()  # a finished execution offers no control
    expect(operator.locator("#inject-form")).to_be_hidden()


def test_bulk_pause_then_cancel_from_the_list_confirms_what_it_touches(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    ids = [server.start("ui.tests", "slow_steps") for _ in range(2)]
    page = signed_in("operator")
    page.goto(f"{server.base_url}/#/executions?flow=slow_steps&state=RUNNING")
    expect(page.get_by_label("State")).to_have_value("RUNNING")
    for execution_id in ids:
        page.get_by_label(f"Select execution {execution_id}").check()

    page.get_by_role("button", name="Pause selected").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#bulk-touched li")).to_have_count(2)
    for execution_id in ids:
        expect(dialog.locator("#bulk-touched")).to_contain_text(execution_id)
    dialog.get_by_role("button", name="Pause 2").click()
    expect(dialog).to_be_hidden()
    # Paused executions leave this RUNNING-only view, live.
    for execution_id in ids:
        expect(page.locator(f'tr[data-id="{execution_id}"]')).to_have_count(0)

    page.get_by_label("State").select_option("PAUSED")
    page.get_by_label("Flow").fill("slow_steps")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"state=PAUSED"))
    for execution_id in ids:
        row = page.locator(f'tr[data-id="{execution_id}"]')
        expect(row).to_have_attribute("data-state", "PAUSED")
    page.get_by_label("Select all executions shown").check()
    page.get_by_role("button", name="Cancel selected").click()
    dialog.get_by_role("button", name=re.compile(r"^Cancel \d+$")).click()
    for execution_id in ids:
        expect(page.locator(f'tr[data-id="{execution_id}"]')).to_have_count(0)
    assert {server.state(execution_id) for execution_id in ids} == {"CANCELLED"}


def test_an_operation_refused_by_the_server_is_explained_in_words(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    execution_id = server.start("ui.tests", "slow_steps")
    page = signed_in("operator")
    page.goto(f"{server.base_url}/#/executions/{execution_id}")
    expect(page.locator("#execution-state")).to_have_text("RUNNING")
    page.get_by_role("button", name="Terminate").click()
    dialog = page.get_by_role("dialog", name="Terminate this execution?")
    dialog.get_by_label("Reason").fill("Too late: someone else cancels it first")

    with server.api() as client:
        client.post(f"/executions/{execution_id}/cancel", json={}).raise_for_status()
    expect(page.locator("#execution-state")).to_have_text("CANCELLED")
    dialog.get_by_role("button", name="Terminate").click()

    expect(dialog.get_by_role("alert")).to_contain_text("Not possible right now: cannot terminate")
    dialog.get_by_role("button", name="Back").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("toolbar", name="Control this execution")).to_be_hidden()


def test_the_controls_work_from_the_keyboard_alone(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    execution_id = server.start("ui.tests", "slow_steps")
    page = signed_in("operator")
    page.get_by_role("link", name=execution_id).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Execution {execution_id}")).to_be_focused()
    expect(page.locator("#execution-state")).to_have_text("RUNNING")

    controls = page.get_by_role("toolbar", name="Control this execution")
    controls.get_by_role("button", name="Pause").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#execution-state")).to_have_text("PAUSED")
    # Pause turned off under the focus: the focus moved to a button still on.
    resume = controls.get_by_role("button", name="Resume")
    expect(resume).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#execution-state")).to_have_text("RUNNING")

    terminate = controls.get_by_role("button", name="Terminate")
    terminate.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Reason (required)")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(terminate).to_be_focused()

    page.keyboard.press("Enter")
    page.keyboard.type("Stopped from the keyboard")
    page.keyboard.press("Tab")  # Back
    page.keyboard.press("Tab")  # Terminate
    page.keyboard.press("Enter")
    expect(page.locator("#execution-state")).to_have_text("TERMINATED")
