"""examples/support_agent.yaml against the test model server: look up, ask approval, refund."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings
from tests.agents.model_server import Reply, model_server, tool_call
from tests.conftest import EXAMPLES


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[Engine]:
    async with Engine(fast_settings(db_path, python_paths=(str(EXAMPLES),))) as running:
        yield running


async def test_the_support_agent_refunds_only_after_approval(engine: Engine) -> None:
    with model_server() as model:
        model.by_turn(
            {
                1: Reply("", [tool_call("c1", "lookup_order", order=1042)]),
                2: Reply("", [tool_call("c2", "refund", order=1042, amount=45.0)]),
                3: Reply("Refunded 39.90 for your teapot. Sorry about that!"),
            }
        )
        await engine.put_flow_file(EXAMPLES / "support_agent.yaml")
        execution = await engine.start_execution(
            "company.team", "support_agent", inputs={"base_url": model.url, "model": "test"}
        )
        await engine.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=15)
        (point,) = (await engine.state(execution.id)).pause_points
        assert point.kind == "approval" and point.task_id == "refund"
        # The person corrects the amount the model asked for.
        await engine.resume(
            execution.id,
            pause_id=point.id,
            inputs={"decision": "approve", "arguments": {"order": 1042, "amount": 39.9}},
        )
        view = await engine.wait(
            execution.id, until=lambda v: v.state in ("COMPLETED", "FAILED"), timeout=15
        )
    assert view.state == "COMPLETED"
    assert view.outputs == {"answer": "Refunded 39.90 for your teapot. Sorry about that!"}
    looked_up, refunded = (m for m in model.requests[2]["messages"] if m["role"] == "tool")
    assert '"paid": 39.9' in looked_up["content"]
    assert refunded["content"] == '{"order": 1042, "refunded": 39.9}'
    assert model.requests[0]["_authorization"] == "Bearer ollama"
