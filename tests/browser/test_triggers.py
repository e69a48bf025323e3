"""A flow's triggers on its page: pause one, resume it with or without what it missed."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server

SCHEDULED = """
id: scheduled
namespace: ui.tests
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@hourly"
tasks:
  - id: note
    type: log
    message: tick
"""


def test_an_operator_pauses_and_resumes_a_trigger_and_a_viewer_only_sees_it(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    with server.api() as client:
        client.put(
            "/flows/ui.tests/scheduled",
            content=SCHEDULED,
            headers={"Content-Type": "application/x-yaml"},
        ).raise_for_status()
    operator = signed_in("operator")
    operator.goto(f"{server.base_url}/#/flows/ui.tests/scheduled")
    row = operator.locator('#triggers tr[data-trigger="hourly"]')
    expect(row.locator(".trigger-state")).to_have_text("Active")
    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".trigger-state")).to_have_text("Paused")
    with server.api() as client:
        (trigger,) = client.get("/flows/ui.tests/scheduled/triggers").json()
        assert trigger["paused"] is True

    viewer = signed_in("viewer")
    viewer.goto(f"{server.base_url}/#/flows/ui.tests/scheduled")
    viewer_row = viewer.locator('#triggers tr[data-trigger="hourly"]')
    expect(viewer_row.locator(".trigger-state")).to_have_text("Paused")
    expect(viewer_row.get_by_role("button")).to_have_count(0)

    row = operator.locator('#triggers tr[data-trigger="hourly"]')
    row.get_by_role("button", name="Resume, skip missed").click()
    expect(operator.locator('#triggers tr[data-trigger="hourly"] .trigger-state')).to_have_text(
        "Active"
    )
    with server.api() as client:
        (trigger,) = client.get("/flows/ui.tests/scheduled/triggers").json()
        assert trigger["paused"] is False
