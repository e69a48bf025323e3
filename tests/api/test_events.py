"""Events over HTTP: JSON pages, live SSE in order, exact resumption, keep-alives, org feed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pausepoint.api import create_app
from pausepoint.api.sse import StreamTiming
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings
from tests.api.conftest import APPROVAL_FLOW, RunningServer, serving

SSE = {"Accept": "text/event-stream"}


@dataclass
class Frame:
    id: str | None
    event: str | None
    data: dict[str, Any] | None
    comment: str | None = None


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Parse an SSE response into frames (comments included, as frames without data)."""
    fields: dict[str, str] = {}
    comment = None
    async for line in response.aiter_lines():
        if line == "":
            if fields or comment is not None:
                data = json.loads(fields["data"]) if "data" in fields else None
                yield Frame(fields.get("id"), fields.get("event"), data, comment)
            fields, comment = {}, None
            continue
        if line.startswith(":"):
            comment = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


async def read_events(response: httpx.Response, *, until: str | None = None) -> list[Frame]:
    """Event frames until the stream ends, or until one of type ``until`` arrived."""
    received = []
    async for frame in frames(response):
        if frame.data is None:
            continue
        received.append(frame)
        if until is not None and frame.event == until:
            break
    return received


async def start_paused(http: httpx.AsyncClient) -> str:
    started = await http.post(
        "/api/v1/executions", json={"namespace": "api.tests", "flow_id": "approval"}
    )
    assert started.status_code == 201, started.text
    execution_id: str = started.json()["id"]

    async def paused() -> bool:
        state = (await http.get(f"/api/v1/executions/{execution_id}/state")).json()
        return bool(state["state"] == "PAUSED")

    await assert_eventually(paused)
    return execution_id


async def test_json_pages_follow_after_and_limit(server: RunningServer) -> None:
    async with server.client("acme", "viewer") as viewer, server.client("acme", "operator") as op:
        execution_id = await start_paused(op)
        everything = (await viewer.get(f"/api/v1/executions/{execution_id}/events")).json()
        seqs = [e["seq"] for e in everything["items"]]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 3
        assert everything["next_after"] is None
        assert everything["items"][0]["type"] == "workflow.started"
        page = (
            await viewer.get(f"/api/v1/executions/{execution_id}/events", params={"limit": 2})
        ).json()
        assert [e["seq"] for e in page["items"]] == [1, 2]
        assert page["next_after"] == 2
        rest = (
            await viewer.get(
                f"/api/v1/executions/{execution_id}/events", params={"after": 2, "limit": 1000}
            )
        ).json()
        assert [e["seq"] for e in rest["items"]] == seqs[2:]


async def test_sse_delivers_live_events_in_order_and_ends_after_the_terminal_one(
    server: RunningServer,
) -> None:
    async with server.client("acme", "operator") as http:
        execution_id = await start_paused(http)
        url = f"/api/v1/executions/{execution_id}/events"
        async with http.stream("GET", url, headers=SSE) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = frames(response)
            seen: list[Frame] = []
            async for frame in stream:
                if frame.data is not None:
                    seen.append(frame)
                if frame.event == "workflow.paused":
                    break
            resumed = await http.post(
                f"/api/v1/executions/{execution_id}/resume", json={"inputs": {"approved": True}}
            )
            assert resumed.status_code == 202
            async for frame in stream:  # until the server ends the stream
                if frame.data is not None:
                    seen.append(frame)
        assert [int(f.id or 0) for f in seen] == list(range(1, len(seen) + 1))
        assert all(f.data is not None and f.data["seq"] == int(f.id or 0) for f in seen)
        assert seen[-1].event == "workflow.completed"
        assert "workflow.resumed" in [f.event for f in seen]


async def test_last_event_id_resumes_with_exactly_the_missed_events(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        execution_id = await start_paused(http)
        url = f"/api/v1/executions/{execution_id}/events"
        async with http.stream("GET", url, headers=SSE) as response:
            before = await read_events(response, until="workflow.paused")
        last_id = before[-1].id
        assert last_id is not None
        # Events happen while no one listens.
        await http.post(
            f"/api/v1/executions/{execution_id}/resume", json={"inputs": {"approved": False}}
        )

        async def completed() -> bool:
            state = (await http.get(f"/api/v1/executions/{execution_id}/state")).json()
            return bool(state["state"] == "COMPLETED")

        await assert_eventually(completed)
        async with http.stream("GET", url, headers={**SSE, "Last-Event-ID": last_id}) as response:
            after = await read_events(response)
        everything = (await http.get(url, params={"limit": 1000})).json()["items"]
        assert [int(f.id or 0) for f in before + after] == [e["seq"] for e in everything]
        assert after[0].id == str(int(last_id) + 1)
        # ?after= does the same for clients that cannot set headers.
        async with http.stream("GET", url, headers=SSE, params={"after": last_id}) as response:
            assert [f.id for f in await read_events(response)] == [f.id for f in after]
        # A finished execution's stream from its end is empty and ends at once.
        end = everything[-1]["seq"]
        async with http.stream("GET", url, headers={**SSE, "Last-Event-ID": str(end)}) as response:
            assert await read_events(response) == []


async def test_a_closed_stream_lets_go_of_its_subscription(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        execution_id = await start_paused(http)
        url = f"/api/v1/executions/{execution_id}/events"
        async with http.stream("GET", url, headers=SSE) as response:
            await read_events(response, until="workflow.paused")
            subscribers = server.engine.feed.sinks  # what a leak would grow
            assert subscribers.get(execution_id)

        async def released() -> bool:
            return not subscribers.get(execution_id)

        await assert_eventually(released)


async def test_a_hundred_followers_share_one_subscription_and_each_get_every_event(
    server: RunningServer,
) -> None:
    steps = "".join(f"  - id: s{i}\n    type: return\n    format: '{i}'\n" for i in range(150))
    flow = f"id: crowd\nnamespace: api.tests\ntasks:\n  - id: gate\n    type: pause\n{steps}"
    limits = httpx.Limits(max_connections=120, max_keepalive_connections=0)
    async with server.client("acme", "admin") as admin:
        put = await admin.put(
            "/api/v1/flows/api.tests/crowd",
            content=flow,
            headers={"Content-Type": "application/x-yaml"},
        )
        assert put.status_code in (200, 201), put.text
        started = await admin.post(
            "/api/v1/executions", json={"namespace": "api.tests", "flow_id": "crowd"}
        )
        execution_id = started.json()["id"]
    url = f"/api/v1/executions/{execution_id}/events"
    readies = [asyncio.Event() for _ in range(100)]

    async def follow(http: httpx.AsyncClient, ready: asyncio.Event) -> list[Frame]:
        received = []
        async with http.stream("GET", url, headers=SSE) as response:
            assert response.status_code == 200
            async for frame in frames(response):
                if frame.data is None:
                    continue
                received.append(frame)
                if frame.event == "workflow.paused":
                    ready.set()
        return received

    async with httpx.AsyncClient(
        base_url=server.base_url,
        headers=server.headers("acme", "viewer"),
        limits=limits,
        timeout=60,
    ) as http:
        followers = [asyncio.create_task(follow(http, ready)) for ready in readies]
        await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 60)
        # However many follow, the runtime hands each checkpoint's events over once.
        assert len(server.engine.feed.sinks[execution_id]) == 1
        resumed = await http.post(
            f"/api/v1/executions/{execution_id}/resume", headers=server.headers("acme", "operator")
        )
        assert resumed.status_code == 202, resumed.text
        received = await asyncio.wait_for(asyncio.gather(*followers), 120)
        stored: list[dict[str, Any]] = []
        while page := (await http.get(url, params={"after": len(stored), "limit": 1000})).json()[
            "items"
        ]:
            stored += page
    expected = [(event["seq"], event["type"]) for event in stored]
    assert expected[-1][1] == "workflow.completed"
    assert len(expected) > 300
    for frames_of_one in received:
        assert [(int(f.id or 0), f.event) for f in frames_of_one] == expected

    async def released() -> bool:
        return execution_id not in server.engine.feed.sinks

    await assert_eventually(released)


async def test_sse_errors(server: RunningServer) -> None:
    async with server.client("acme", "viewer") as http:
        unknown = await http.get("/api/v1/executions/nope/events", headers=SSE)
        assert unknown.status_code == 404
        assert (await http.get("/api/v1/executions/nope/events")).status_code == 404
        anonymous = await http.get(
            "/api/v1/executions/nope/events", headers={**SSE, "X-API-Key": ""}
        )
        assert anonymous.status_code == 401
    async with server.client("acme", "operator") as http:
        execution_id = await start_paused(http)
        bad = await http.get(
            f"/api/v1/executions/{execution_id}/events",
            headers={**SSE, "Last-Event-ID": "yesterday"},
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]
    async with server.client("globex", "admin") as other:
        url = f"/api/v1/executions/{execution_id}/events"
        assert (await other.get(url, headers=SSE)).status_code == 404
        assert (await other.get(url)).status_code == 404


async def test_idle_streams_send_keep_alive_comments(db_path: Path) -> None:
    async with Engine(fast_settings(db_path), serve=True) as engine:
        app = create_app(engine)
        app.state.sse_timing = StreamTiming(keepalive=0.05, store_poll=0.2)
        scoped = engine.as_org("acme")
        key, _ = await scoped.create_api_key("operator")
        await scoped.put_flow(APPROVAL_FLOW)
        async with (
            serving(app) as (base_url, _),
            httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": key}, timeout=30) as http,
        ):
            execution_id = await start_paused(http)
            comments = []
            url = f"/api/v1/executions/{execution_id}/events"
            async with http.stream("GET", url, headers=SSE) as response:
                async for frame in frames(response):
                    if frame.comment is not None:
                        comments.append(frame.comment)
                    if len(comments) >= 3:
                        break
            assert comments == ["keep-alive"] * 3


async def test_a_client_behind_the_live_window_catches_up_from_the_store(db_path: Path) -> None:
    async with Engine(fast_settings(db_path), serve=True) as engine:
        app = create_app(engine)
        app.state.sse_timing = StreamTiming(
            keepalive=60, store_poll=60, max_buffered=1, window_bytes=1
        )
        scoped = engine.as_org("acme")
        key, _ = await scoped.create_api_key("operator")
        await scoped.put_flow(APPROVAL_FLOW)
        async with (
            serving(app) as (base_url, _),
            httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": key}, timeout=30) as http,
        ):
            execution_id = await start_paused(http)
            url = f"/api/v1/executions/{execution_id}/events"
            async with http.stream("GET", url, headers=SSE) as response:
                stream = frames(response)
                seen = []
                async for frame in stream:
                    seen.append(frame)
                    if frame.event == "workflow.paused":
                        break
                # More events arrive at once than the live window keeps.
                await http.post(
                    f"/api/v1/executions/{execution_id}/resume", json={"inputs": {"approved": True}}
                )
                seen += [frame async for frame in stream]
            stored = (await http.get(url, params={"limit": 1000})).json()["items"]
        ids = [int(f.id) for f in seen if f.id is not None]
        assert ids == [event["seq"] for event in stored]
        assert seen[-1].event == "workflow.completed"


async def test_the_organization_feed_carries_only_its_own_executions(
    server: RunningServer,
) -> None:
    async with (
        server.client("acme", "viewer") as viewer,
        server.client("acme", "operator") as acme,
        server.client("globex", "operator") as globex,
    ):
        async with viewer.stream("GET", "/api/v1/events", headers=SSE) as response:
            assert response.status_code == 200
            stream = frames(response)
            first = await anext(stream)
            assert first.comment == "connected"
            theirs = await start_paused(globex)
            ours = await start_paused(acme)
            seen = []
            async for frame in stream:
                if frame.data is None:
                    continue
                seen.append(frame)
                if frame.data["execution_id"] == ours and frame.event == "workflow.paused":
                    break
        assert {f.data["execution_id"] for f in seen if f.data} == {ours}
        assert seen[0].id == f"{ours}:1"
        assert theirs != ours
        anonymous = await viewer.get("/api/v1/events", headers={**SSE, "X-API-Key": ""})
        assert anonymous.status_code == 401
