"""Agent executions against a real HTTP model server: tools, pause, inject, cancel, approval, crash.

The model server (tests/agents/model_server.py) speaks the OpenAI
chat-completions protocol on loopback; the agent code cannot tell it from a
real provider. Each test scripts the model's replies by turn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings, run_flow, wait_for_state
from tests.agents.model_server import ModelServer, Reply, model_server, tool_call
from tests.integration.test_recovery import die

NAMESPACE = "agents"
TIMEOUT = 15.0
TOOLS = """
    tools:
      - name: add
        python: tests.agents.agent_tools:add
      - name: explode
        python: tests.agents.agent_tools:explode
      - name: note
        description: Write a note in the execution's log
        parameters:
          type: object
          properties: {text: {type: string}}
          required: [text]
        task:
          type: log
          message: "note: {{ args.text }}"
"""


def agent_flow(url: str, *, stream: bool = False, extra: str = "") -> str:
    return f"""
id: helper
namespace: {NAMESPACE}
inputs:
  - id: a
    type: INT
    defaults: 2
tasks:
  - id: bot
    type: agent
    provider:
      baseUrl: {url}
      model: test-model
      apiKey: "{{{{ secrets.MODEL_KEY }}}}"
    system: You are a careful calculator.
    prompt: "Add {{{{ inputs.a }}}} and 3."
    stream: {str(stream).lower()}
{TOOLS}{extra}
"""


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with model_server() as server:
        yield server


@pytest.fixture
async def engine(db_path: Path) -> Any:
    async with Engine(fast_settings(db_path)) as running:
        await running.put_secret("MODEL_KEY", "sk-test-123")
        yield running


async def start(engine: Engine, source: str) -> str:
    return (await run_flow(engine, source)).id


async def wait_state(engine: Engine, execution_id: str, *states: str) -> ExecutionView:
    return await wait_for_state(engine, execution_id, *states, timeout=TIMEOUT)


async def requests_reach(model: ModelServer, count: int) -> None:
    async def arrived() -> bool:
        return len(model.requests) >= count

    await assert_eventually(arrived, timeout=TIMEOUT)


def answer_of(view: ExecutionView) -> dict[str, Any]:
    """The outputs of the agent task run."""
    (run,) = [run for run in view.task_runs if run.type == "agent"]
    return run.outputs or {}


def contents(request: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m.get("content") or "") for m in request["messages"]]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_multi_turn_tool_use_end_to_end(
    engine: Engine, model: ModelServer, stream: bool
) -> None:
    model.by_turn(
        {
            1: Reply("Let me add.", [tool_call("c1", "add", a=2, b=3)]),
            2: Reply("", [tool_call("c2", "note", text="sum is 5")]),
            3: Reply("2 + 3 = 5"),
        }
    )
    execution_id = await start(engine, agent_flow(model.url, stream=stream))
    view = await wait_state(engine, execution_id, "COMPLETED", "FAILED")
    assert view.state == "COMPLETED", view
    outputs = answer_of(view)
    assert outputs["answer"] == "2 + 3 = 5"
    assert outputs["turns"] == 3
    assert outputs["usage"]["total"] == {
        "prompt_tokens": 30,
        "completion_tokens": 15,
        "total_tokens": 45,
    }
    first, second, third = model.requests
    assert first["_authorization"] == "Bearer sk-test-123"
    assert contents(first) == [
        ("system", "You are a careful calculator."),
        ("user", "Add 2 and 3."),
    ]
    add = next(t["function"] for t in first["tools"] if t["function"]["name"] == "add")
    assert add["description"] == "Add two whole numbers."
    assert add["parameters"]["properties"] == {
        "a": {"type": "integer"},
        "b": {"type": "integer", "default": 0},
    }
    assert add["parameters"]["required"] == ["a"]
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "name": "add",
        "content": json.dumps({"value": 5}),
    }
    assert third["messages"][-1]["tool_call_id"] == "c2"
    events = await engine.events(execution_id, limit=1000)
    types = [event.type for event in events]
    assert types.count("agent.message") == 3
    assert types.count("agent.tool_call") == 2
    assert types.count("agent.tool_result") == 2
    logged = [e for e in events if e.type == "task.completed" and e.data.get("task_id") == "note"]
    assert "note: sum is 5" in json.dumps(logged[0].data["logs"])
    assert "sk-test-123" not in json.dumps([e.data for e in events])
    assert "sk-test-123" not in json.dumps(view.model_dump(mode="json"))


async def test_a_failing_tool_is_a_tool_result_not_a_crash(
    engine: Engine, model: ModelServer
) -> None:
    model.by_turn(
        {1: Reply("", [tool_call("c1", "explode", reason="no")]), 2: Reply("sorry, it failed")}
    )
    execution_id = await start(engine, agent_flow(model.url))
    view = await wait_state(engine, execution_id, "COMPLETED", "FAILED")
    assert view.state == "COMPLETED"
    result = model.requests[1]["messages"][-1]
    assert result["role"] == "tool" and result["content"].startswith("error: ")
    assert "tool failed: no" in result["content"]


async def test_unknown_tools_and_bad_arguments_go_back_to_the_model(
    engine: Engine, model: ModelServer
) -> None:
    broken = {"id": "c2", "type": "function", "function": {"name": "add", "arguments": "{nope"}}
    model.by_turn(
        {1: Reply("", [tool_call("c1", "teleport"), broken]), 2: Reply("I will stop guessing.")}
    )
    execution_id = await start(engine, agent_flow(model.url))
    assert (await wait_state(engine, execution_id, "COMPLETED", "FAILED")).state == "COMPLETED"
    replies = [m["content"] for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert "unknown tool 'teleport'" in replies[0]
    assert "not valid JSON" in replies[1]


async def test_pause_lands_between_turns_and_no_request_is_sent_until_resume(
    engine: Engine, model: ModelServer
) -> None:
    model.by_turn({1: Reply("", [tool_call("c1", "add", a=1, b=1)], delay=0.5), 2: Reply("two")})
    execution_id = await start(engine, agent_flow(model.url))
    await requests_reach(model, 1)
    await engine.pause(execution_id, reason="checking the agent")
    await wait_state(engine, execution_id, "PAUSED")
    # A negative check: no event says "no request was sent", so leave a window for one.
    await asyncio.sleep(0.3)
    assert len(model.requests) == 1
    view = await engine.execution(execution_id)
    assert [run.task_id for run in view.task_runs if run.state == "SUCCESS"] == ["bot"]
    await engine.resume(execution_id)
    assert answer_of(await wait_state(engine, execution_id, "COMPLETED"))["answer"] == "two"
    assert len(model.requests) == 2


async def test_inject_in_flight_reaches_the_next_call_once_after_the_tool_results(
    engine: Engine, model: ModelServer
) -> None:
    model.by_turn(
        {
            1: Reply("", [tool_call("c1", "add", a=2, b=3)], delay=0.5),
            2: Reply("", [tool_call("c2", "note", text="ok")]),
            3: Reply("done with EU template"),
        }
    )
    execution_id = await start(engine, agent_flow(model.url))
    await requests_reach(model, 1)
    await engine.inject(execution_id, "use the EU template")
    await engine.inject(execution_id, "and be brief", role="system")
    await wait_state(engine, execution_id, "COMPLETED")
    second, third = model.requests[1], model.requests[2]
    assert contents(second)[-3:] == [
        ("tool", json.dumps({"value": 5})),
        ("user", "use the EU template"),
        ("system", "and be brief"),
    ]
    for request in (second, third):
        said = [c for _, c in contents(request)]
        assert said.count("use the EU template") == 1
        assert said.count("and be brief") == 1


async def test_inject_while_paused_is_delivered_after_resume(
    engine: Engine, model: ModelServer
) -> None:
    model.by_turn({1: Reply("", [tool_call("c1", "add", a=1)], delay=0.3), 2: Reply("fine")})
    execution_id = await start(engine, agent_flow(model.url))
    await requests_reach(model, 1)
    await engine.pause(execution_id)
    await wait_state(engine, execution_id, "PAUSED")
    await engine.inject(execution_id, "first note")
    await engine.inject(execution_id, "second note")
    assert len(model.requests) == 1
    await engine.resume(execution_id)
    await wait_state(engine, execution_id, "COMPLETED")
    assert contents(model.requests[1])[-2:] == [("user", "first note"), ("user", "second note")]


async def test_injected_assistant_and_tool_messages_reach_the_model_as_it_accepts_them(
    engine: Engine, model: ModelServer
) -> None:
    """Kubiya's roles: an assistant message goes as one; a tool message answers no tool
    call, which model APIs refuse, so it goes as the user's, marked as a tool's."""
    # The model server counts turns by assistant messages: the injected one is one more.
    first = Reply("", [tool_call("c1", "add", a=1)], delay=0.3)
    model.by_turn({1: first, 2: Reply("fine"), 3: Reply("fine")})
    execution_id = await start(engine, agent_flow(model.url))
    await requests_reach(model, 1)
    await engine.pause(execution_id)
    await wait_state(engine, execution_id, "PAUSED")
    await engine.inject(execution_id, "I already checked", role="assistant")
    await engine.inject(execution_id, "disk 93% full", role="tool")
    await engine.resume(execution_id)
    await wait_state(engine, execution_id, "COMPLETED")
    assert contents(model.requests[1])[-2:] == [
        ("assistant", "I already checked"),
        ("user", "[tool] disk 93% full"),
    ]


async def test_cancel_during_a_slow_model_call_aborts_the_request(
    engine: Engine, model: ModelServer
) -> None:
    model.by_turn({1: Reply("too late", delay=30)})
    execution_id = await start(engine, agent_flow(model.url))
    await requests_reach(model, 1)
    await engine.cancel(execution_id, reason="runaway")
    assert (await wait_state(engine, execution_id, "CANCELLED")).state == "CANCELLED"

    async def disconnected() -> bool:
        return model.disconnects == 1

    await assert_eventually(disconnected, timeout=TIMEOUT)


async def test_rate_limits_and_server_errors_are_retried(
    engine: Engine, model: ModelServer
) -> None:
    replies = iter([Reply(status=429, retry_after=0.1), Reply(status=503), Reply("made it")])
    model.script = lambda request: next(replies)
    execution_id = await start(engine, agent_flow(model.url))
    view = await wait_state(engine, execution_id, "COMPLETED", "FAILED")
    assert answer_of(view)["answer"] == "made it"
    assert len(model.requests) == 3


APPROVE_NOTE = "    approve: [note]\n"


async def approval_pause(engine: Engine, execution_id: str) -> str:
    view = await wait_state(engine, execution_id, "PAUSED")
    (point,) = (await engine.state(execution_id)).pause_points
    assert point.kind == "approval" and point.task_id == "note"
    schema = point.on_resume_schema or {}
    assert schema["properties"]["arguments"]["default"] == {"text": "draft"}
    assert view.state == "PAUSED"
    return point.id


@pytest.mark.parametrize(
    ("inputs", "seen"),
    [
        ({"decision": "approve"}, '"note: draft"'),
        ({"decision": "approve", "arguments": {"text": "edited"}}, '"note: edited"'),
        ({"decision": "reject", "reason": "not now"}, "rejected by"),
    ],
    ids=["approve", "approve-edited", "reject"],
)
async def test_tool_calls_that_need_approval_wait_for_a_person(
    engine: Engine, model: ModelServer, inputs: dict[str, Any], seen: str
) -> None:
    model.by_turn({1: Reply("", [tool_call("c1", "note", text="draft")]), 2: Reply("noted")})
    execution_id = await start(engine, agent_flow(model.url, extra=APPROVE_NOTE))
    pause_id = await approval_pause(engine, execution_id)
    assert len(model.requests) == 1
    await engine.resume(execution_id, pause_id=pause_id, inputs=inputs)
    view = await wait_state(engine, execution_id, "COMPLETED", "FAILED")
    assert view.state == "COMPLETED"
    result = model.requests[1]["messages"][-1]
    assert result["tool_call_id"] == "c1"
    if inputs["decision"] == "reject":
        assert "rejected by" in result["content"] and "not now" in result["content"]
    else:
        events = await engine.events(execution_id, limit=1000)
        logs = [e.data for e in events if e.type == "task.completed"]
        assert seen in json.dumps(logs)


async def test_an_approval_rejects_bad_decisions_before_anything_changes(
    engine: Engine, model: ModelServer
) -> None:
    from pausepoint.errors import InvalidInput

    model.by_turn({1: Reply("", [tool_call("c1", "note", text="draft")]), 2: Reply("ok")})
    execution_id = await start(engine, agent_flow(model.url, extra=APPROVE_NOTE))
    pause_id = await approval_pause(engine, execution_id)
    with pytest.raises(InvalidInput) as raised:
        await engine.resume(execution_id, pause_id=pause_id, inputs={"decision": "maybe"})
    assert raised.value.errors[0].loc[-1] == "decision"
    assert (await engine.state(execution_id)).state == "PAUSED"


async def test_a_person_responds_in_place_of_the_tool(engine: Engine, model: ModelServer) -> None:
    """respond: the tool does not run; the model reads the answer as its result."""
    model.by_turn({1: Reply("", [tool_call("c1", "note", text="draft")]), 2: Reply("thanks")})
    execution_id = await start(engine, agent_flow(model.url, extra=APPROVE_NOTE))
    await approval_pause(engine, execution_id)
    await engine.vote(execution_id, "respond", inputs={"response": {"saved": False}}, actor="ops")
    view = await wait_state(engine, execution_id, "COMPLETED", "FAILED")
    assert view.state == "COMPLETED"
    result = model.requests[1]["messages"][-1]
    assert result["tool_call_id"] == "c1"
    assert json.loads(result["content"]) == {"saved": False}
    events = await engine.events(execution_id, limit=1000)
    assert "note: draft" not in json.dumps([e.data for e in events])  # the tool never ran


async def test_a_deny_vote_on_a_tool_call_is_feedback_the_model_reads(
    engine: Engine, model: ModelServer
) -> None:
    model.by_turn({1: Reply("", [tool_call("c1", "note", text="draft")]), 2: Reply("ok")})
    execution_id = await start(engine, agent_flow(model.url, extra=APPROVE_NOTE))
    await approval_pause(engine, execution_id)
    from pausepoint.service.approvals import Reviewer

    inbox = await engine.approvals(Reviewer("ops", (), "operator"), assigned_to_me=True)
    (item,) = [i for i in inbox.items if i.execution_id == execution_id]
    assert item.request.tool_call == {"tool": "note", "arguments": {"text": "draft"}}
    assert item.me.may_approve
    await engine.vote(execution_id, "deny", comment="use the wiki instead", actor="ops")
    view = await wait_state(engine, execution_id, "COMPLETED", "FAILED")
    assert view.state == "COMPLETED"
    content = model.requests[1]["messages"][-1]["content"]
    assert "rejected by ops" in content and "use the wiki instead" in content


@pytest.mark.parametrize(("text", "asks"), [("short", False), ("a much longer note", True)])
async def test_approve_when_decides_per_call(
    engine: Engine, model: ModelServer, text: str, asks: bool
) -> None:
    model.by_turn({1: Reply("", [tool_call("c1", "note", text=text)]), 2: Reply("done")})
    extra = (
        '    approve:\n      tools: [note]\n      when: "{{ call.arguments.text | length > 10 }}"\n'
    )
    execution_id = await start(engine, agent_flow(model.url, extra=extra))
    view = await wait_state(engine, execution_id, "PAUSED", "COMPLETED", "FAILED")
    assert view.state == ("PAUSED" if asks else "COMPLETED"), view.error
    if asks:
        (point,) = view.pause_points
        assert point.kind == "approval" and point.task_id == "note"


async def test_after_a_crash_only_the_unfinished_call_is_sent_again(
    db_path: Path, model: ModelServer
) -> None:
    model.by_turn(
        {
            1: Reply("", [tool_call("c1", "add", a=2, b=3)]),
            2: Reply("slow answer", delay=1.0),
        }
    )
    settings = fast_settings(db_path, lease_ttl=0.5)
    first = Engine(settings)
    await first.start()
    await first.put_secret("MODEL_KEY", "sk-test-123")
    execution_id = await start(first, agent_flow(model.url))
    await requests_reach(model, 2)  # turn 1 recorded, turn 2 in flight
    await die(first)
    async with Engine(settings, serve=True) as second:
        view = await wait_state(second, execution_id, "COMPLETED", "FAILED")
    assert view.state == "COMPLETED"
    turns = [1 + sum(m["role"] == "assistant" for m in r["messages"]) for r in model.requests]
    assert turns == [1, 2, 2]  # the recorded first turn was never sent again
    assert model.requests[1]["messages"] == model.requests[2]["messages"]
