"""A viewer reads everything and is offered no control."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, screenshot


def test_a_viewer_sees_no_control_buttons_anywhere(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    execution_id = server.start("company.team", "human_in_the_loop")
    page = signed_in("viewer")
    row = page.locator(f'#executions tr[data-id="{execution_id}"]')
    expect(row).to_have_attribute("data-state", "PAUSED")
    expect(page.locator("#executions input[type=checkbox]")).to_have_count(0)
    expect(page.get_by_role("button", name="Pause selected")).to_have_count(0)

    row.get_by_role("link", name=execution_id).click()
    expect(page.locator("#execution-state")).to_have_text("PAUSED")
    expect(page.locator("#task-runs")).to_contain_text("before_approval")
    expect(page.locator("#pause-points")).to_contain_text("An operator can resume it.")
    expect(page.locator("button[data-op]")).to_have_count(0)
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    expect(page.locator("#inject-form")).to_have_count(0)

    page.goto(f"{server.base_url}/#/flows/company.team/human_in_the_loop")
    expect(page.locator("pre.yaml")).to_contain_text("io.kestra.plugin.core.flow.Pause")
    expect(page.get_by_role("button", name="Start execution")).to_have_count(0)


def test_pages_read_at_phone_width_in_dark_mode(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    execution_id = server.start("company.team", "human_in_the_loop")
    page = signed_in("operator", viewport={"width": 390, "height": 800}, color_scheme="dark")
    expect(page.locator("#executions tbody tr").first).to_be_visible()
    assert_no_sideways_scroll(page)
    screenshot(page, "executions-phone-dark")

    page.goto(f"{server.base_url}/#/executions/{execution_id}")
    expect(page.locator("#execution-state")).to_have_text("PAUSED")
    assert_no_sideways_scroll(page)
    page.goto(f"{server.base_url}/#/flows/company.team/vacation_approval_process")
    expect(page.get_by_role("button", name="Start execution")).to_be_visible()
    assert_no_sideways_scroll(page)


def assert_no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} scrolls sideways at phone width ({width}px)"
