"""An agent's tool call approved from the browser: the generated form, edited arguments."""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.agents.model_server import Reply, model_server, tool_call
from tests.browser.conftest import Server


def test_an_agent_tool_call_is_approved_with_edited_arguments_from_its_form(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    with model_server() as model:
        model.by_turn(
            {
                1: Reply("", [tool_call("c1", "refund", order=1042, amount=45.0)]),
                2: Reply("Refunded 39.90."),
            }
        )
        execution_id = server.start(
            "company.team", "support_agent", base_url=model.url, model="test"
        )
        page = signed_in("operator")
        page.goto(f"{server.base_url}/#/executions/{execution_id}")
        expect(page.locator("#execution-state")).to_have_text("PAUSED")
        form = page.get_by_role("form", name="Resume Approve a call of the tool refund")
        arguments = form.get_by_label("arguments")
        expect(arguments).to_be_visible()
        assert json.loads(arguments.input_value()) == {"order": 1042, "amount": 45}  # pre-filled
        form.get_by_label("decision").select_option("approve")
        arguments.fill('{"order": 1042, "amount": 39.9}')
        form.get_by_role("button", name="Resume").click()
        expect(page.locator("#execution-state")).to_have_text("COMPLETED")
        refunded = model.requests[1]["messages"][-1]
    assert refunded["tool_call_id"] == "c1"
    assert json.loads(refunded["content"]) == {"order": 1042, "refunded": 39.9}
