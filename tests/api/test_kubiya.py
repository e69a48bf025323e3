"""A Kubiya-shaped session with plain HTTP: Kubiya's paths, bodies, ``UserKey`` credentials,
and reply fields checked against the response models of Kubiya's server.

The field lists are read from ``kubiya-control-plane-api`` 1.0.2 (AGPL-3.0): the
replies of pause/resume/cancel/message in ``app/routers/executions.py``, and
TerminateWorkflowResponse, BatchTerminateResponse and BatchTerminateResult in
``app/schemas/worker_queue_observability_schemas.py``; the stream's event names in
``app/routers/executions/streaming/event_formatter.py``. Only the names are used here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer
from tests.api.test_compat import wait_for
from tests.api.test_events import Frame, frames, start_paused

# Kubiya's reply fields, route by route.
CONTROL_FIELDS = {"success", "execution_id", "workflow_id", "message"}  # pause, resume, cancel
MESSAGE_FIELDS = {"success", "execution_id", "message"}
TERMINATE_FIELDS = {"success", "workflow_id", "terminated_at"}
BATCH_FIELDS = {"total_requested", "total_succeeded", "total_failed", "results"}
BATCH_RESULT_FIELDS = {"execution_id", "success", "workflow_id", "error", "terminated_at"}
# Every event name Kubiya's stream can send.
KUBIYA_EVENTS = {
    "connected",
    "message",
    "history_complete",
    "status",
    "tool_started",
    "tool_completed",
    "member_tool_started",
    "member_tool_completed",
    "message_chunk",
    "member_message_chunk",
    "member_message_complete",
    "thinking_start",
    "thinking_delta",
    "thinking_complete",
    "member_thinking_start",
    "member_thinking_delta",
    "member_thinking_complete",
    "done",
    "error",
    "degraded",
    "recovered",
    "reconnect",
    "timeout_warning",
    "gap_detected",
}


def kubiya_client(server: RunningServer, org: str = "acme", role: str = "operator") -> Any:
    """A plain client sending Kubiya's ``Authorization: UserKey <key>``."""
    key = server.keys[f"{org}:{role}"]
    return httpx.AsyncClient(
        base_url=server.base_url, headers={"Authorization": f"UserKey {key}"}, timeout=30
    )


async def stream_until(stream: httpx.Response | AsyncIterator[Frame], done: Any) -> list[Frame]:
    """The stream's frames (comments left out) up to the first for which ``done`` holds;
    ``stream`` is a response, or its frames when read in several goes."""
    received = []
    source = frames(stream) if isinstance(stream, httpx.Response) else stream
    async for frame in source:
        if frame.data is None:
            continue
        received.append(frame)
        if done(frame):
            break
    return received


def of(received: list[Frame], name: str) -> list[dict[str, Any]]:
    """The data of the frames named ``name``."""
    return [f.data for f in received if f.event == name and f.data is not None]


def statuses(received: list[Frame]) -> list[str]:
    return [data["status"] for data in of(received, "status")]


async def test_a_kubiya_session_message_resume_stream(server: RunningServer) -> None:
    async with kubiya_client(server) as kubiya:
        execution_id = await start_paused(kubiya)
        base = f"/api/v1/executions/{execution_id}"

        for role in ("assistant", "tool", "system", "user"):
            message = {"message": f"as {role}", "role": role}
            sent = await kubiya.post(f"{base}/message", json=message)
            assert sent.status_code == 202, sent.text
            assert set(sent.json()) >= MESSAGE_FIELDS and sent.json()["success"] is True
        context = (await kubiya.get(base)).json()["context"]
        assert [m["role"] for m in context] == ["assistant", "tool", "system", "user"]

        resumed = await kubiya.post(f"{base}/resume", json={"inputs": {"approved": True}})
        assert resumed.status_code == 202, resumed.text
        body = resumed.json()
        assert set(body) >= CONTROL_FIELDS
        assert (body["success"], body["execution_id"], body["workflow_id"]) == (
            True,
            execution_id,
            execution_id,
        )
        await wait_for(kubiya, execution_id, "COMPLETED")
        # Kubiya answers 200 {success: false}; pausepoint keeps its 409 that says why.
        late = await kubiya.post(f"{base}/resume", json={})
        assert late.status_code == 409, late.text
        assert late.json()["detail"] == f"cannot resume completed execution {execution_id}"

        async with kubiya.stream("GET", f"{base}/stream") as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            received = await stream_until(reply, lambda f: f.event == "done")
    names = [f.event for f in received]
    assert set(names) <= KUBIYA_EVENTS, names
    assert names[0] == "connected" and names[-1] == "done"
    assert received[0].data == {
        "execution_id": execution_id,
        "organization_id": "acme",
        "status": "completed",
        "connected_at": received[0].data["connected_at"] if received[0].data else None,
    }
    assert statuses(received) == ["running", "waiting_for_input", "running", "completed"]
    messages = [(data["role"], data["content"]) for data in of(received, "message")]
    assert messages == [(r, f"as {r}") for r in ("assistant", "tool", "system", "user")]
    started = [data["data"]["tool_name"] for data in of(received, "tool_started")]
    assert started == ["prepare", "wait", "done"]
    assert received[-1].data == {
        "execution_id": execution_id,
        "workflow_status": "completed",
        "pausepoint_event": "workflow.completed",
    }
    # Ids are Kubiya's {execution_id}_{counter}_{micros}; one resumes right after it.
    with_ids = [f for f in received if f.id]
    assert all(f.id and f.id.startswith(f"{execution_id}_") for f in with_ids)
    middle = with_ids[len(with_ids) // 2]
    async with (
        kubiya_client(server, role="viewer") as viewer,
        viewer.stream("GET", f"{base}/stream", headers={"Last-Event-ID": middle.id or ""}) as again,
    ):
        rest = await stream_until(again, lambda f: f.event == "done")
    after = [f.id for f in rest if f.id]
    assert after == [f.id for f in with_ids[with_ids.index(middle) + 1 :]]


async def test_a_live_kubiya_stream_sees_a_cancel_end_in_done(server: RunningServer) -> None:
    async with kubiya_client(server) as kubiya, kubiya_client(server, role="viewer") as viewer:
        execution_id = await start_paused(kubiya)
        base = f"/api/v1/executions/{execution_id}"
        async with viewer.stream("GET", f"{base}/stream") as reply:
            live = frames(reply)
            received = await stream_until(
                live, lambda f: f.event == "status" and f.data["status"] == "waiting_for_input"
            )
            cancelled = await kubiya.post(f"{base}/cancel", json={"reason": "not needed"})
            assert cancelled.status_code == 202, cancelled.text
            assert set(cancelled.json()) >= CONTROL_FIELDS
            assert cancelled.json()["workflow_id"] == execution_id
            received += await stream_until(live, lambda f: f.event == "done")
    assert statuses(received)[-1] == "cancelled"
    assert received[-1].data and received[-1].data["workflow_status"] == "cancelled"


async def test_terminate_and_batch_terminate_in_kubiya_shapes(server: RunningServer) -> None:
    async with (
        kubiya_client(server) as kubiya,
        kubiya_client(server, "globex", "operator") as globex,
    ):
        single = await start_paused(kubiya)
        first, second, untouched = [await start_paused(kubiya) for _ in range(3)]
        theirs = await start_paused(globex)

        terminated = await kubiya.post(
            f"/api/v1/executions/{single}/terminate", json={"reason": "runaway"}
        )
        assert terminated.status_code == 200, terminated.text
        assert set(terminated.json()) >= TERMINATE_FIELDS
        assert terminated.json()["workflow_id"] == single

        asked = [first, "nope", theirs, second, first]
        batch = await kubiya.post(
            "/api/v1/executions/batch/terminate",
            json={"execution_ids": asked, "reason": "cleanup"},
        )
        assert batch.status_code == 200, batch.text
        body = batch.json()
        assert set(body) == BATCH_FIELDS
        assert (body["total_requested"], body["total_succeeded"], body["total_failed"]) == (5, 3, 2)
        results = {r["execution_id"]: r for r in body["results"]}
        assert [r["execution_id"] for r in body["results"]] == asked
        for result in body["results"]:
            assert set(result) >= BATCH_RESULT_FIELDS
        for mine in (first, second):
            assert results[mine]["success"] is True and results[mine]["workflow_id"] == mine
            assert results[mine]["error"] is None
            await wait_for(kubiya, mine, "TERMINATED")
        # Another organization's execution answers as an unknown one does.
        assert results["nope"]["success"] is results[theirs]["success"] is False
        assert results["nope"]["error"] == "execution nope not found"
        assert results[theirs]["error"] == f"execution {theirs} not found"
        assert (await globex.get(f"/api/v1/executions/{theirs}/state")).json()["state"] == "PAUSED"
        assert (await kubiya.get(f"/api/v1/executions/{untouched}/state")).json()["state"] == (
            "PAUSED"
        )


async def test_kubiya_bad_input_is_a_4xx_naming_the_field(server: RunningServer) -> None:
    async with kubiya_client(server) as kubiya, kubiya_client(server, "globex", "admin") as globex:
        execution_id = await start_paused(kubiya)
        theirs = await start_paused(globex)
        base = f"/api/v1/executions/{execution_id}"
        batch = "/api/v1/executions/batch/terminate"
        cases: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
            (batch, {"execution_ids": [], "reason": "x"}, ("body", "execution_ids")),
            (batch, {"execution_ids": execution_id, "reason": "x"}, ("body", "execution_ids")),
            (batch, {"execution_ids": ["a"] * 101, "reason": "x"}, ("body", "execution_ids")),
            (batch, {"execution_ids": [execution_id]}, ("body", "reason")),
            (batch, {"execution_ids": [execution_id], "reason": 5}, ("body", "reason")),
            (f"{base}/message", {"message": "hi", "role": "robot"}, ("body", "role")),
            (f"{base}/message", {"message": ["hi"]}, ("body", "message")),
            (f"{base}/terminate", {}, ("body", "reason")),
        ]
        for path, body, where in cases:
            reply = await kubiya.post(path, json=body)
            assert reply.status_code == 422, (path, body, reply.text)
            assert where in {tuple(e["loc"]) for e in reply.json()["detail"]}, reply.text

        bad_resume = await kubiya.get(f"{base}/stream", params={"last_event_id": "garbage"})
        assert bad_resume.status_code == 422
        assert bad_resume.json()["detail"][0]["loc"] == ["query", "last_event_id"]
        other_stream = await kubiya.get(
            f"{base}/stream", headers={"Last-Event-ID": f"{theirs}_3_1700000000000000"}
        )
        assert other_stream.status_code == 422
        assert other_stream.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]
        for unknown in ("nope", theirs):
            missing = await kubiya.get(f"/api/v1/executions/{unknown}/stream")
            assert missing.status_code == 404
            assert missing.json()["detail"] == f"execution {unknown} not found"
            message = await kubiya.post(
                f"/api/v1/executions/{unknown}/message", json={"message": "hi"}
            )
            assert message.status_code == 404

        # Nothing changed: still paused, no command recorded, no message delivered.
        assert (await kubiya.get(f"{base}/state")).json()["state"] == "PAUSED"
        assert (await kubiya.get(f"{base}/audit")).json() == []
        assert (await kubiya.get(base)).json()["context"] == []

    async with kubiya_client(server, role="viewer") as viewer:
        forbidden = await viewer.post(batch, json={"execution_ids": [execution_id], "reason": "x"})
        assert forbidden.status_code == 403
        assert "detail" in forbidden.json()
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        assert (await anonymous.get(f"{base}/stream")).status_code == 401
        denied = await anonymous.post(batch, json={"execution_ids": ["x"], "reason": "x"})
        assert denied.status_code == 401

    async def still_paused() -> bool:
        state = (await server.engine.as_org("acme").state(execution_id)).state
        return bool(state == "PAUSED")

    await assert_eventually(still_paused)
