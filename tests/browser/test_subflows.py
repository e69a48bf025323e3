"""An execution tree in the UI: a parent lists its subflows, a child links back to it,
and a subflow's Pause task is resumed from its root's page."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server

CHILD = """
id: tree_child
namespace: ui.tests
tasks:
  - id: wait_here
    type: pause
"""

PARENT = """
id: tree_parent
namespace: ui.tests
tasks:
  - id: call
    type: subflow
    namespace: ui.tests
    flowId: tree_child
"""


def put_flows(server: Server, **sources: str) -> None:
    """Store each flow (by id) in the namespace ui.tests."""
    with server.api() as client:
        for flow_id, source in sources.items():
            client.put(
                f"/flows/ui.tests/{flow_id}",
                content=source,
                headers={"Content-Type": "application/x-yaml"},
            ).raise_for_status()


def test_a_parent_lists_its_subflow_and_the_child_links_back(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    put_flows(server, tree_child=CHILD, tree_parent=PARENT)
    parent_id = server.start("ui.tests", "tree_parent")

    def child_paused() -> bool:
        with server.api() as client:
            children = client.get(f"/executions?parent={parent_id}").json()["items"]
        return bool(children) and children[0]["state"] == "PAUSED"

    for _ in range(300):
        if child_paused():
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the child never PAUSED on its Pause task")
    page = signed_in("operator")
    page.goto(f"{server.base_url}/#/executions/{parent_id}")
    children = page.locator("#children li")
    expect(children).to_have_count(1)
    expect(children.first).to_contain_text("ui.tests.tree_child")
    expect(children.first.locator(".badge")).to_have_text("PAUSED")
    children.first.get_by_role("link").click()
    expect(page.locator("#parent-link")).to_have_text(parent_id)
    expect(page.locator("#execution-state")).to_contain_text("PAUSED")
    # The child's Pause task is answered from its root's page.
    page.locator("#parent-link").click()
    card = page.locator("#pause-points .pause-point", has_text="in subflow ui.tests.tree_child")
    expect(card).to_have_count(1)
    card.get_by_role("button", name="Resume").click()
    expect(page.locator("#execution-state")).to_contain_text("COMPLETED", timeout=15_000)
    expect(page.locator("#children li .badge")).to_have_text("COMPLETED")


TWO_GATES_CHILD = """
id: tree_child_two
namespace: ui.tests
tasks:
  - id: first_gate
    type: pause
  - id: second_gate
    type: pause
"""

TWO_GATES_PARENT = PARENT.replace("tree_parent", "tree_parent_two").replace(
    "flowId: tree_child", "flowId: tree_child_two"
)


def test_the_roots_page_follows_its_subflows_live(
    server: Server, signed_in: Callable[..., Page]
) -> None:
    """The root's own events say nothing of its child: when the child moves on to its
    next Pause task (resumed elsewhere), the root's open page shows it without a reload."""
    put_flows(server, tree_child_two=TWO_GATES_CHILD, tree_parent_two=TWO_GATES_PARENT)
    parent_id = server.start("ui.tests", "tree_parent_two")
    page = signed_in("operator")
    page.goto(f"{server.base_url}/#/executions/{parent_id}")
    first = page.locator("#pause-points .pause-point", has_text="first_gate")
    expect(first).to_have_count(1, timeout=15_000)
    # The root's own stream has caught up: nothing more will come on it.
    expect(page.locator("#event-log")).to_contain_text("subflow.started")
    page.wait_for_timeout(500)  # and the refresh its last event asked for is done
    with server.api() as client:
        (child,) = client.get(f"/executions?parent={parent_id}").json()["items"]
        client.post(f"/executions/{child['id']}/resume", json={}).raise_for_status()
    second = page.locator("#pause-points .pause-point", has_text="second_gate")
    expect(second).to_have_count(1, timeout=15_000)
    expect(first).to_have_count(0)
