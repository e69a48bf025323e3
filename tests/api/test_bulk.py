"""Bulk control over HTTP: by ids or filter, per-execution results, dry runs change nothing."""

from __future__ import annotations

import contextlib
import sqlite3

import httpx

from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer
from tests.api.test_events import start_paused


async def states(http: httpx.AsyncClient, ids: list[str]) -> list[str]:
    return [(await http.get(f"/api/v1/executions/{i}/state")).json()["state"] for i in ids]


async def test_dry_run_lists_what_would_be_touched_and_changes_nothing(
    server: RunningServer,
) -> None:
    async with server.client("acme", "operator") as http:
        ids = [await start_paused(http) for _ in range(2)]
        reply = await http.post(
            "/api/v1/executions/bulk/cancel", json={"ids": [*ids, "missing"], "dry_run": True}
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["dry_run"] is True
        assert [(r["execution_id"], r["status"]) for r in body["results"]] == [
            (ids[0], 200),
            (ids[1], 200),
            ("missing", 404),
        ]
        assert body["results"][0]["state"] == "PAUSED"
        assert await states(http, ids) == ["PAUSED", "PAUSED"]
        audit = (await http.get(f"/api/v1/executions/{ids[0]}/audit")).json()
        assert audit == []


async def test_cancel_by_ids_reports_each_execution(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        ids = [await start_paused(http) for _ in range(2)]
        reply = await http.post(
            "/api/v1/executions/bulk/cancel", json={"ids": [ids[0], "missing", ids[1]]}
        )
        assert reply.status_code == 200
        results = reply.json()["results"]
        assert [r["status"] for r in results] == [202, 404, 202]
        assert results[1]["message"] == "execution missing not found"

        async def cancelled() -> bool:
            return await states(http, ids) == ["CANCELLED", "CANCELLED"]

        await assert_eventually(cancelled)
        again = await http.post("/api/v1/executions/bulk/cancel", json={"ids": ids})
        assert [r["status"] for r in again.json()["results"]] == [409, 409]
        assert again.json()["results"][0]["state"] == "CANCELLED"
        assert "cancelled" in again.json()["results"][0]["message"]
        dry = await http.post("/api/v1/executions/bulk/pause", json={"ids": ids, "dry_run": True})
        assert [r["status"] for r in dry.json()["results"]] == [409, 409]


async def test_resume_and_terminate_by_filter(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        ids = [await start_paused(http) for _ in range(2)]
        resumed = await http.post(
            "/api/v1/executions/bulk/resume",
            json={
                "filter": {"state": ["PAUSED"], "flow_id": "approval"},
                "inputs": {"approved": 1},
            },
        )
        assert resumed.status_code == 200
        assert sorted(r["execution_id"] for r in resumed.json()["results"]) == sorted(ids)
        assert {r["status"] for r in resumed.json()["results"]} == {202}

        async def completed() -> bool:
            return await states(http, ids) == ["COMPLETED", "COMPLETED"]

        await assert_eventually(completed)
        third = await start_paused(http)
        terminated = await http.post(
            "/api/v1/executions/bulk/terminate",
            json={"filter": {"namespace": "api.tests"}, "reason": "maintenance"},
        )
        by_id = {r["execution_id"]: r for r in terminated.json()["results"]}
        assert by_id[third]["status"] == 200
        assert by_id[third]["state"] == "TERMINATED"
        assert by_id[ids[0]]["status"] == 409


async def test_invalid_bulk_requests_are_422(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        both = await http.post(
            "/api/v1/executions/bulk/pause", json={"ids": ["a"], "filter": {"state": ["PAUSED"]}}
        )
        assert both.status_code == 422
        assert both.json()["detail"][0]["loc"] == ["body"]
        neither = await http.post("/api/v1/executions/bulk/pause", json={})
        assert neither.status_code == 422
        no_reason = await http.post("/api/v1/executions/bulk/terminate", json={"ids": ["a"]})
        assert no_reason.status_code == 422
        assert no_reason.json()["detail"][0]["loc"] == ["body", "reason"]
        inputs = await http.post(
            "/api/v1/executions/bulk/cancel", json={"ids": ["a"], "inputs": {"x": 1}}
        )
        assert inputs.json()["detail"][0]["loc"] == ["body", "inputs"]
        unknown_op = await http.post("/api/v1/executions/bulk/inject", json={"ids": ["a"]})
        assert unknown_op.status_code == 422
        bad_state = await http.post(
            "/api/v1/executions/bulk/pause", json={"filter": {"state": ["SLEEPING"]}}
        )
        assert bad_state.status_code == 422


async def test_bulk_needs_an_operator_and_stays_in_the_organization(
    server: RunningServer,
) -> None:
    async with server.client("acme", "operator") as http:
        execution_id = await start_paused(http)
    async with server.client("acme", "viewer") as http:
        reply = await http.post("/api/v1/executions/bulk/cancel", json={"ids": [execution_id]})
        assert reply.status_code == 403
        anonymous = await http.post(
            "/api/v1/executions/bulk/cancel", json={"ids": ["x"]}, headers={"X-API-Key": ""}
        )
        assert anonymous.status_code == 401
    async with server.client("globex", "operator") as http:
        reply = await http.post("/api/v1/executions/bulk/cancel", json={"ids": [execution_id]})
        assert [r["status"] for r in reply.json()["results"]] == [404]
        by_filter = await http.post(
            "/api/v1/executions/bulk/cancel", json={"filter": {"flow_id": "approval"}}
        )
        assert by_filter.json()["results"] == []
    async with server.client("acme", "viewer") as http:
        assert await states(http, [execution_id]) == ["PAUSED"]


async def test_a_dry_run_answers_each_execution_as_the_real_call_would(
    server: RunningServer,
) -> None:
    """The dry run admits each command exactly as the call does: pausing an execution
    already held by a pause is the call's 409, not a "would pause"."""
    async with server.client("acme", "operator") as http:
        ids = [await start_paused(http) for _ in range(2)]
        url = "/api/v1/executions/bulk/pause"
        held = (await http.post(url, json={"ids": ids})).json()["results"]
        assert {r["status"] for r in held} == {202}, held  # a hold over the Pause task
        dry = (await http.post(url, json={"ids": ids, "dry_run": True})).json()["results"]
        real = (await http.post(url, json={"ids": ids})).json()["results"]
        assert [(r["status"], r["message"]) for r in dry] == [
            (r["status"], r["message"]) for r in real
        ]
        assert {r["status"] for r in dry} == {409}, dry


async def test_a_retried_bulk_whose_answer_was_lost_replays_its_commands(
    server: RunningServer,
) -> None:
    """A bulk request done but with its answer never stored (the database went away just
    then: the chain frees the key for the retry) is sent again with the same key: each
    execution's command is a replay, not a second cancel refused with 409."""
    key = "bulk-answer-lost"
    async with server.client("acme", "operator") as http:
        ids = [await start_paused(http) for _ in range(2)]
        first = await http.post(
            "/api/v1/executions/bulk/cancel", json={"ids": ids}, headers={"Idempotency-Key": key}
        )
        assert [r["status"] for r in first.json()["results"]] == [202, 202], first.text

        async def cancelled() -> bool:
            return await states(http, ids) == ["CANCELLED", "CANCELLED"]

        await assert_eventually(cancelled)
        database = sqlite3.connect(server.engine.settings.db.removeprefix("sqlite:///"))
        with contextlib.closing(database), database:
            forgotten = database.execute("DELETE FROM idempotency WHERE key = ?", (key,))
        assert forgotten.rowcount == 1
        again = await http.post(
            "/api/v1/executions/bulk/cancel", json={"ids": ids}, headers={"Idempotency-Key": key}
        )
        assert [r["status"] for r in again.json()["results"]] == [202, 202], again.text
        for execution_id in ids:
            audit = (await http.get(f"/api/v1/executions/{execution_id}/audit")).json()
            assert [entry["kind"] for entry in audit] == ["cancel"], audit
        # Without the key, the same bulk is a new request: each cancel is refused.
        fresh = await http.post("/api/v1/executions/bulk/cancel", json={"ids": ids})
        assert [r["status"] for r in fresh.json()["results"]] == [409, 409]
