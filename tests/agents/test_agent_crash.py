"""kill -9 the server while an agent's model call is in flight, then restart it.

Only the unfinished call is sent again (with the same messages); recorded turns
are not; a message injected before the kill reaches the next call exactly once.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pausepoint.testing import assert_eventually
from tests.agents.model_server import Reply, model_server, tool_call, turn_of
from tests.agents.test_agent import NAMESPACE, agent_flow
from tests.api.conftest import free_port
from tests.api.test_server_crash import KEY, server_process, wait_healthy

pytestmark = pytest.mark.chaos  # kill -9 a server subprocess


async def test_a_kill_9_mid_turn_resends_only_the_unfinished_call(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    flows = tmp_path / "flows"
    flows.mkdir()
    with model_server() as model:
        slow = {1: Reply("", [tool_call("c1", "add", a=2, b=3)]), 2: Reply("never", delay=60)}
        quick = {
            2: Reply("", [tool_call("c2", "note", text="five")]),
            3: Reply("2 + 3 = 5"),
        }
        model.by_turn(slow)
        (flows / "helper.yaml").write_text(agent_flow(model.url), encoding="utf-8")
        port = free_port()
        async with server_process(db, flows, port) as server:
            key = (await server.read_until(KEY)).group(0)
            await wait_healthy(server.base_url)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"X-API-Key": key}, timeout=10
            ) as http:
                put = await http.put("/api/v1/secrets/MODEL_KEY", json={"value": "sk-test-123"})
                assert put.status_code in (200, 201, 204), put.text
                started = await http.post(
                    "/api/v1/executions", json={"namespace": NAMESPACE, "flow_id": "helper"}
                )
                execution_id = started.json()["id"]

                async def second_turn_in_flight() -> bool:
                    return [turn_of(r) for r in model.requests] == [1, 2]

                await assert_eventually(second_turn_in_flight, timeout=15)
                injected = await http.post(
                    f"/api/v1/executions/{execution_id}/inject",
                    json={"message": "answer in one line"},
                )
                assert injected.status_code == 202, injected.text
            await server.kill()
        model.by_turn(quick)
        async with server_process(db, flows, port) as server:
            await wait_healthy(server.base_url)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"X-API-Key": key}, timeout=10
            ) as http:

                async def completed() -> bool:
                    reply = await http.get(f"/api/v1/executions/{execution_id}/state")
                    return bool(reply.json()["state"] == "COMPLETED")

                await assert_eventually(completed, timeout=20)
    turns = [turn_of(request) for request in model.requests]
    assert turns == [1, 2, 2, 3]  # turn 1 was recorded: never sent again
    assert model.requests[1]["messages"] == model.requests[2]["messages"]
    said = [m.get("content") for m in model.requests[3]["messages"]]
    assert said.count("answer in one line") == 1
    roles = [m["role"] for m in model.requests[3]["messages"]]
    assert roles[-2:] == ["tool", "user"]  # after the tool result of turn 2
