"""Agents over the HTTP API: streamed tokens live over SSE, tool approval through resume."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pausepoint.testing import assert_eventually
from tests.agents.model_server import ModelServer, Reply, model_server, tool_call
from tests.agents.test_agent import APPROVE_NOTE, NAMESPACE, agent_flow
from tests.api.conftest import RunningServer, running_server
from tests.api.test_events import SSE, frames


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with model_server() as server:
        yield server


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_path) as running:
        await running.engine.as_org("acme").put_secret("MODEL_KEY", "sk-test-123")
        yield running


async def start(server: RunningServer, source: str) -> str:
    async with server.client("acme", "admin") as admin:
        put = await admin.put(
            f"/api/v1/flows/{NAMESPACE}/helper",
            content=source,
            headers={"Content-Type": "application/x-yaml"},
        )
        assert put.status_code in (200, 201), put.text
        started = await admin.post(
            "/api/v1/executions", json={"namespace": NAMESPACE, "flow_id": "helper"}
        )
        assert started.status_code == 201, started.text
        execution_id: str = started.json()["id"]
        return execution_id


async def test_streamed_tokens_reach_sse_followers_live_and_are_not_stored(
    server: RunningServer, model: ModelServer
) -> None:
    model.by_turn({1: Reply("two plus three is five", delay=0.5)})
    execution_id = await start(server, agent_flow(model.url, stream=True))
    url = f"/api/v1/executions/{execution_id}/events"
    async with server.client("acme", "viewer") as viewer:
        async with viewer.stream("GET", url, headers=SSE) as response:
            received = [frame async for frame in frames(response)]
        stored = (await viewer.get(url, params={"limit": 1000})).json()["items"]
    deltas = [f for f in received if f.event == "agent.delta"]
    assert "".join(f.data["data"]["content"] for f in deltas if f.data) == "two plus three is five"
    assert all(f.id is None for f in deltas)  # nothing to resume from: they are not stored
    kept = [(int(f.id), f.event) for f in received if f.id is not None]
    assert kept == [(event["seq"], event["type"]) for event in stored]
    assert "agent.delta" not in {event["type"] for event in stored}
    assert kept[-1][1] == "workflow.completed"


async def test_a_tool_call_is_approved_through_the_resume_endpoint(
    server: RunningServer, model: ModelServer
) -> None:
    model.by_turn({1: Reply("", [tool_call("c1", "note", text="draft")]), 2: Reply("noted")})
    execution_id = await start(server, agent_flow(model.url, extra=APPROVE_NOTE))
    async with server.client("acme", "operator") as operator:

        async def paused() -> bool:
            state = (await operator.get(f"/api/v1/executions/{execution_id}/state")).json()
            return bool(state["state"] == "PAUSED")

        await assert_eventually(paused)
        state = (await operator.get(f"/api/v1/executions/{execution_id}/state")).json()
        (point,) = state["pause_points"]
        assert point["kind"] == "approval"
        schema = point["on_resume_schema"]
        assert schema["properties"]["decision"]["enum"] == ["approve", "reject", "respond"]
        resume = f"/api/v1/executions/{execution_id}/resume"
        bad = await operator.post(
            resume, json={"pause_id": point["id"], "inputs": {"decision": "maybe"}}
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"][-1] == "decision"
        good = await operator.post(
            resume,
            json={
                "pause_id": point["id"],
                "inputs": {"decision": "approve", "arguments": {"text": "final"}},
            },
        )
        assert good.status_code == 202, good.text

        async def completed() -> bool:
            state = (await operator.get(f"/api/v1/executions/{execution_id}/state")).json()
            return bool(state["state"] == "COMPLETED")

        await assert_eventually(completed)
        events = (await operator.get(f"/api/v1/executions/{execution_id}/events")).json()
    logs = [e["data"] for e in events["items"] if e["type"] == "task.completed"]
    assert "note: final" in json.dumps(logs)  # the edited arguments ran
    assert model.requests[1]["messages"][-1]["tool_call_id"] == "c1"
    assert len(model.requests) == 2
