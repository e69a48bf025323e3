"""Signing in: the link the server prints, the form, a bad key, signing out."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import Server


def test_the_printed_link_signs_in_and_leaves_no_key_in_the_address_bar(
    server: Server, new_context: Callable[..., BrowserContext]
) -> None:
    page = new_context().new_page()
    page.goto(server.sign_in_link)

    expect(page.locator("#identity-text")).to_have_text("default · admin")
    expect(page).to_have_url(f"{server.base_url}/#/executions")
    expect(page.get_by_role("heading", name="Executions", exact=True)).to_be_visible()


def test_the_form_signs_in_and_sign_out_forgets_the_key(
    server: Server, new_context: Callable[..., BrowserContext]
) -> None:
    page = new_context().new_page()
    page.goto(server.base_url)
    page.get_by_label("API key").fill("pp_not_a_real_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")

    page.get_by_label("API key").fill(server.keys["operator"])
    page.keyboard.press("Enter")
    expect(page.locator("#identity-text")).to_have_text("default · operator")

    page.reload()  # the key lives in the tab's session
    expect(page.locator("#identity-text")).to_have_text("default · operator")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
