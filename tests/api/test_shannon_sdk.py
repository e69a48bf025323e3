"""Shannon's own Python SDK (``shannon-sdk``, pinned in the test extra), unchanged, against
a real server on loopback: a Shannon user's whole session (submit, status, wait,
pause/resume/cancel, control-state, events, stream, approve) and the bad input they
can send, which gets Shannon's error shape or a 4xx naming the field and changes nothing.

The server answers Shannon tasks with one flow (``shannon_task_flow``): a python task
the test holds open (so that the task is RUNNING for as long as the test needs), then
a Pause task asking whether the answer is approved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from shannon import AsyncShannonClient, EventType, TaskStatusEnum
from shannon import errors as shannon_errors

from pausepoint.api import sse
from pausepoint.api.shannon_shapes import ShannonFrames
from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer
from tests.api.matrix_support import audit, gated_server, gates, wait_started
from tests.api.test_events import start_paused

NAMESPACE = "api.shannon"
ANSWER_FLOW = f"""
id: answer
namespace: {NAMESPACE}
inputs:
  - id: query
    type: STRING
  - id: session_id
    type: STRING
    required: false
  - id: context
    type: JSON
    required: false
tasks:
  - id: think
    type: python
    function: flows_gates:step
    kwargs:
      key: "{{{{ inputs.context.gate }}}}"
  - id: review
    type: pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: feedback
        type: STRING
        required: false
  - id: answer
    type: return
    format: "{{{{ inputs.query }}}}: approved={{{{ outputs.review.onResume.approved }}}}"
outputs:
  result: "{{{{ outputs.answer.value }}}}"
"""
# A task that only waits for the test: denying its pause point has no input to say no
# with, so the denial cancels it.
HOLD_FLOW = f"""
id: hold
namespace: {NAMESPACE}
inputs:
  - id: query
    type: STRING
  - id: context
    type: JSON
    required: false
tasks:
  - id: think
    type: python
    function: flows_gates:step
    kwargs:
      key: "{{{{ inputs.context.gate }}}}"
"""
POLL = 0.02  # the SDK's wait() polls get_status; 2 s by default


@contextlib.asynccontextmanager
async def shannon_server(db_path: Path, flow: str = "answer") -> AsyncIterator[RunningServer]:
    async with gated_server(db_path, shannon_task_flow=f"{NAMESPACE}/{flow}") as server:
        for org in ("acme", "globex"):
            for source in (ANSWER_FLOW, HOLD_FLOW):
                await server.engine.as_org(org).put_flow(source)
        yield server


def shannon(server: RunningServer, role: str = "operator", org: str = "acme") -> AsyncShannonClient:
    return AsyncShannonClient(base_url=server.base_url, api_key=server.keys[f"{org}:{role}"])


async def first_event(client: AsyncShannonClient, workflow_id: str, kind: str) -> Any:
    """The first event of type ``kind`` on the task's SSE stream (the stream is then closed)."""
    async with contextlib.aclosing(client.stream(workflow_id, types=[kind])) as events:
        async for event in events:
            return event
    raise AssertionError(f"the stream of {workflow_id} ended without a {kind} event")


async def status_is(client: AsyncShannonClient, task_id: str, status: TaskStatusEnum) -> None:
    async def reached() -> bool:
        return bool((await client.get_status(task_id)).status == status)

    await assert_eventually(reached, what=f"task {task_id} {status.value}")


async def test_a_shannon_users_session_submit_pause_resume_approve_wait_and_read(
    db_path: Path,
) -> None:
    async with shannon_server(db_path) as server:
        client = shannon(server)
        gate = gates.new_key("shannon")
        try:
            handle = await client.submit_task(
                "what is six times seven", session_id="sess-42", context={"gate": gate}
            )
            task_id = handle.task_id
            assert handle.workflow_id == task_id and handle.session_id == "sess-42"
            await wait_started(gate)
            status = await client.get_status(task_id)
            assert status.status == TaskStatusEnum.RUNNING
            assert (status.query, status.session_id) == ("what is six times seven", "sess-42")
            assert status.context == {"gate": gate}
            assert isinstance(status.created_at, datetime)

            # Pause while the python task runs: it finishes, then the task holds.
            assert await client.pause_task(task_id, reason="let me look") is True
            state = await client.get_control_state(task_id)
            assert state.is_paused and state.pause_reason == "let me look"
            with pytest.raises(shannon_errors.ConnectionError) as again:
                await client.pause_task(task_id)
            assert again.value.code == "409" and "task is already paused" in str(again.value)
            gates.gate(gate).release.set()
            await status_is(client, task_id, TaskStatusEnum.PAUSED)
            assert await client.resume_task(task_id, reason="go on") is True

            # The Pause task asks for approval; the stream names the pause point.
            requested = await first_event(client, task_id, EventType.APPROVAL_REQUESTED.value)
            assert requested.workflow_id == task_id and requested.seq > 0
            approval_id = requested.payload["approval_id"]
            assert requested.payload["inputs"] == ["approved", "feedback"]
            assert (await client.get_status(task_id)).status == TaskStatusEnum.PAUSED
            approved = await client.approve(approval_id, task_id, feedback="looks right")
            assert approved is True

            final = await client.wait(task_id, timeout=30, poll_interval=POLL)
            assert final.status == TaskStatusEnum.COMPLETED
            assert final.result == "what is six times seven: approved=True"
            assert not (await client.get_control_state(task_id)).is_paused

            events = await client.get_task_events(task_id)
            kinds = [event.type for event in events]
            for expected in (
                "WORKFLOW_STARTED",
                "workflow.pausing",
                "workflow.paused",
                "workflow.resumed",
                "APPROVAL_REQUESTED",
                "WORKFLOW_COMPLETED",
            ):
                assert expected in kinds, kinds
            assert kinds.index("workflow.pausing") < kinds.index("workflow.paused")
            assert kinds[-1] == "WORKFLOW_COMPLETED"
            assert [event.seq for event in events] == sorted(event.seq for event in events)
            assert all(event.workflow_id == task_id for event in events)

            # The stream of a finished task: all of it, then from an event on.
            streamed = [event async for event in client.stream(task_id)]
            assert [event.type for event in streamed] == kinds
            middle = streamed[len(streamed) // 2]
            rest = [event async for event in client.stream(task_id, last_event_id=middle.id)]
            assert [event.seq for event in rest] == [e.seq for e in streamed if e.seq > middle.seq]

            tasks, total = await client.list_tasks(session_id="sess-42")
            assert total == 1 and [t.task_id for t in tasks] == [task_id]
            assert tasks[0].query == "what is six times seven"
            assert tasks[0].status == "TASK_STATUS_COMPLETED" and tasks[0].completed_at
            done, _ = await client.list_tasks(status="COMPLETED")
            assert task_id in [t.task_id for t in done]
            running, _ = await client.list_tasks(status="RUNNING")
            assert task_id not in [t.task_id for t in running]
        finally:
            await client.close()


async def test_a_denial_answers_the_pause_points_own_no_or_cancels(db_path: Path) -> None:
    async with shannon_server(db_path) as server:
        client = shannon(server)
        try:
            # The Pause task declares `approved`: a denial resumes it with approved=false.
            gate = gates.new_key("deny")
            gates.gate(gate).release.set()
            handle = await client.submit_task("ship it?", context={"gate": gate})
            requested = await first_event(client, handle.workflow_id, "APPROVAL_REQUESTED")
            denied = await client.approve(
                requested.payload["approval_id"], handle.workflow_id, approved=False
            )
            assert denied is True
            final = await client.wait(handle.task_id, timeout=30, poll_interval=POLL)
            assert final.result == "ship it?: approved=False"

            # A manual pause says no by no input: the denial cancels, the feedback is why.
            gate = gates.new_key("deny-manual")
            async with server.client("acme", "operator") as http:
                held = await http.post(
                    "/api/v1/executions",
                    json={
                        "namespace": NAMESPACE,
                        "flow_id": "hold",
                        "inputs": {"query": "q", "context": {"gate": gate}},
                    },
                )
            task_id = held.json()["id"]
            await wait_started(gate)
            assert await client.pause_task(task_id, reason="hold on") is True
            gates.gate(gate).release.set()
            await status_is(client, task_id, TaskStatusEnum.PAUSED)
            metadata = (await client.get_status(task_id)).metadata
            assert metadata is not None
            (pause_id,) = metadata["pause_points"]
            assert await client.approve(pause_id, task_id, approved=False, feedback="no") is True
            final = await client.wait(task_id, timeout=30, poll_interval=POLL)
            assert final.status == TaskStatusEnum.CANCELLED
            state = await client.get_control_state(task_id)
            assert state.is_cancelled and state.cancel_reason == "no"
        finally:
            await client.close()


async def test_the_sdk_reads_who_paused_when_and_who_cancelled_why(db_path: Path) -> None:
    async with shannon_server(db_path) as server:
        client = shannon(server)
        gate = gates.new_key("who")
        try:
            task_id = (await client.submit_task("q", context={"gate": gate})).task_id
            await wait_started(gate)
            state = await client.get_control_state(task_id)
            assert (state.is_paused, state.is_cancelled) == (False, False)

            assert await client.pause_task(task_id, reason="hold for review") is True
            state = await client.get_control_state(task_id)
            operator = "key:" + server.keys["acme:operator"].split("_")[1]
            assert state.is_paused and not state.is_cancelled
            assert state.paused_by == operator
            assert isinstance(state.paused_at, datetime) and state.paused_at.tzinfo is not None

            assert await client.cancel(task_id, reason="not needed any more") is True
            final = await client.wait(task_id, timeout=30, poll_interval=POLL)
            assert final.status == TaskStatusEnum.CANCELLED
            state = await client.get_control_state(task_id)
            assert (state.is_paused, state.is_cancelled) == (False, True)
            assert state.cancel_reason == "not needed any more"
            assert state.cancelled_by == operator
            assert state.paused_at is None and state.paused_by is None
        finally:
            await client.close()


async def test_a_filtered_live_stream_ends_when_the_task_does(db_path: Path) -> None:
    """The task's last event is filtered out of the stream, which still ends after it."""
    async with shannon_server(db_path, flow="hold") as server:
        client = shannon(server)
        gate = gates.new_key("filtered")
        try:
            task_id = (await client.submit_task("q", context={"gate": gate})).task_id
            await wait_started(gate)

            async def collect() -> list[Any]:
                return [event async for event in client.stream(task_id, types=["AGENT_STARTED"])]

            reading = asyncio.ensure_future(collect())
            style = ShannonFrames(frozenset({"AGENT_STARTED"}))
            await assert_eventually(
                lambda: sse.channel_of(server.engine.feed, task_id, style) is not None,
                what="the stream following the task live",
            )
            gates.gate(gate).release.set()
            events = await asyncio.wait_for(reading, 30)
            assert [event.type for event in events] == ["AGENT_STARTED"]
            assert (await client.get_status(task_id)).status == TaskStatusEnum.COMPLETED
        finally:
            await client.close()


async def test_a_task_paused_on_its_pause_task_is_already_paused(server: RunningServer) -> None:
    """Shannon's seed: pausing a paused task is 409 "task is already paused"; nothing changes."""
    async with server.client("acme", "operator") as http:
        task_id = await start_paused(http)
    client = shannon(server)
    try:
        with pytest.raises(shannon_errors.ConnectionError) as refused:
            await client.pause_task(task_id, reason="again")
        assert refused.value.code == "409"
        assert refused.value.message == "HTTP 409: task is already paused"
        state = await client.get_control_state(task_id)
        assert state.is_paused and state.paused_by is None
        async with server.client("acme", "operator") as http:
            assert await audit(http, task_id) == []
    finally:
        await client.close()


# -- bad input ----------------------------------------------------------------------------


async def test_unknown_and_other_orgs_ids_are_task_not_found_and_change_nothing(
    db_path: Path,
) -> None:
    async with shannon_server(db_path) as server:
        gate = gates.new_key("tenancy")
        acme, globex = shannon(server), shannon(server, "admin", "globex")
        try:
            task_id = (await acme.submit_task("mine", context={"gate": gate})).task_id
            await wait_started(gate)
            for probe in (task_id, "no-such-task"):
                with pytest.raises(shannon_errors.TaskNotFoundError) as missing:
                    await globex.get_status(probe)
                assert missing.value.message == "Task not found"
                with pytest.raises(shannon_errors.TaskNotFoundError):
                    await globex.get_task_events(probe)
                with pytest.raises(shannon_errors.TaskNotFoundError):
                    await globex.pause_task(probe)
                with pytest.raises(shannon_errors.ShannonError) as decided:
                    await globex.approve("any", probe)
                assert (decided.value.code, decided.value.message) == (
                    "404",
                    "Workflow or approval not found",
                )
                assert [event async for event in globex.stream(probe)] == []  # 404 ends it
            tasks, total = await globex.list_tasks()
            assert (tasks, total) == ([], 0)

            async with httpx.AsyncClient(base_url=server.base_url) as http:
                for probe in (task_id, "no-such-task"):
                    reply = await http.get(
                        "/api/v1/stream/sse",
                        params={"workflow_id": probe},
                        headers=server.headers("globex", "admin"),
                    )
                    assert (reply.status_code, reply.json()) == (404, {"error": "Task not found"})
            # An approval id that is no open pause point of acme's own task: 409.
            with pytest.raises(shannon_errors.ConnectionError) as closed:
                await acme.approve("no-such-pause", task_id)
            assert closed.value.code == "409" and "is not open" in closed.value.message
            assert (await acme.get_status(task_id)).status == TaskStatusEnum.RUNNING
            async with server.client("acme", "operator") as http:
                assert await audit(http, task_id) == []
        finally:
            await acme.close()
            await globex.close()


async def test_malformed_requests_are_4xx_naming_the_field(db_path: Path) -> None:
    async with shannon_server(db_path) as server, server.client("acme", "operator") as http:
        gate = gates.new_key("malformed")
        started = await http.post("/api/v1/tasks", json={"query": "q", "context": {"gate": gate}})
        assert started.status_code == 200, started.text
        task_id = started.json()["task_id"]
        assert started.headers["X-Workflow-ID"] == task_id
        await wait_started(gate)
        cases: list[tuple[str, str, dict[str, Any], list[str]]] = [
            ("POST", "/api/v1/tasks", {"json": {"query": ""}}, ["body", "query"]),
            ("POST", "/api/v1/tasks", {"json": {"query": 7}}, ["body", "query"]),
            ("POST", "/api/v1/tasks", {"json": {"query": "q", "context": []}}, ["body", "context"]),
            (
                "POST",
                "/api/v1/tasks",
                {"json": {"query": "q", "session_id": "has space"}},
                ["body", "session_id"],
            ),
            ("GET", "/api/v1/tasks", {"params": {"status": "SLEEPING"}}, ["query", "status"]),
            ("GET", "/api/v1/tasks", {"params": {"limit": 0}}, ["query", "limit"]),
            (
                "GET",
                f"/api/v1/tasks/{task_id}/events",
                {"params": {"offset": -1}},
                ["query", "offset"],
            ),
            (
                "GET",
                "/api/v1/stream/sse",
                {"params": {"workflow_id": task_id, "last_event_id": "abc"}},
                ["query", "last_event_id"],
            ),
            ("GET", "/api/v1/stream/sse", {}, ["query", "workflow_id"]),
            (
                "POST",
                "/api/v1/approvals/decision",
                {"json": {"approval_id": "a", "workflow_id": task_id, "approved": "maybe"}},
                ["body", "approved"],
            ),
            (
                "POST",
                "/api/v1/approvals/decision",
                {"json": {"workflow_id": task_id}},
                ["body", "approval_id"],
            ),
        ]
        for method, path, kwargs, loc in cases:
            reply = await http.request(method, path, **kwargs)
            where = f"{method} {path} {kwargs}: {reply.status_code} {reply.text}"
            assert reply.status_code == 422, where
            assert loc in [error["loc"][: len(loc)] for error in reply.json()["detail"]], where
        assert (await http.get(f"/api/v1/executions/{task_id}/state")).json()["state"] == "RUNNING"
        assert await audit(http, task_id) == []
        listed = (await http.get("/api/v1/tasks")).json()
        assert listed["total_count"] == 1  # no bad submit started anything


async def test_submit_without_a_configured_flow_is_501_saying_how(server: RunningServer) -> None:
    client = shannon(server)
    viewer = shannon(server, "viewer")
    try:
        with pytest.raises(shannon_errors.PermissionDeniedError):
            await viewer.submit_task("anything")
        with pytest.raises(shannon_errors.ServerError) as refused:
            await client.submit_task("anything")
        assert refused.value.code == "501"
        assert "PAUSEPOINT_SHANNON_TASK_FLOW=<namespace>/<flow_id>" in refused.value.message
        assert (await client.list_tasks()) == ([], 0)
    finally:
        await client.close()
        await viewer.close()


async def test_a_configured_flow_missing_from_the_org_is_501_too(db_path: Path) -> None:
    async with gated_server(db_path, shannon_task_flow="api.nowhere/nothing") as server:
        async with server.client("acme", "operator") as http:
            reply = await http.post("/api/v1/tasks", json={"query": "q"})
        assert reply.status_code == 501
        assert "api.nowhere/nothing" in reply.json()["error"]
