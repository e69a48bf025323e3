"""The seed systems' routes answer with the seeds' shapes (Shannon, Kubiya, Syntropic137)."""

from __future__ import annotations

import httpx

from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer
from tests.api.test_events import start_paused


async def wait_for(http: httpx.AsyncClient, execution_id: str, state: str) -> None:
    async def reached() -> bool:
        reply = await http.get(f"/api/v1/executions/{execution_id}/state")
        return bool(reply.json()["state"] == state)

    await assert_eventually(reached)


async def test_shannon_pause_resume_cancel_and_control_state(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        task_id = await start_paused(http)
        state = await http.get(f"/api/v1/tasks/{task_id}/control-state")
        assert state.status_code == 200
        assert state.json() == {
            "task_id": task_id,
            "state": "PAUSED",
            "paused": True,
            "checkpoint": state.json()["checkpoint"],
            "pause_reason": state.json()["pause_reason"],
            "is_paused": True,
            "is_cancelled": False,
            "paused_at": None,  # its own Pause task: nobody asked for a pause
            "paused_by": None,
            "cancel_reason": None,
            "cancelled_by": None,
        }
        resumed = await http.post(
            f"/api/v1/tasks/{task_id}/resume", json={"inputs": {"approved": True}}
        )
        assert resumed.status_code == 202, resumed.text
        assert resumed.json() == {
            "success": True,
            "message": "Resume signal sent",
            "task_id": task_id,
        }
        await wait_for(http, task_id, "COMPLETED")
        late = await http.post(f"/api/v1/tasks/{task_id}/pause", json={"reason": "review"})
        assert late.status_code == 409
        assert late.json() == {"error": "cannot pause completed task"}

        # Paused on its Pause task is paused, for Shannon (seed 002): 409, nothing changes.
        other = await start_paused(http)
        again = await http.post(f"/api/v1/tasks/{other}/pause", json={"reason": "review"})
        assert again.status_code == 409
        assert again.json() == {"error": "task is already paused"}
        assert (await http.get(f"/api/v1/executions/{other}/audit")).json() == []
        cancelled = await http.post(f"/api/v1/tasks/{other}/cancel", json={})
        assert cancelled.status_code == 202
        assert cancelled.json()["message"] == "Cancel signal sent"
        await wait_for(http, other, "CANCELLED")
        final = (await http.get(f"/api/v1/tasks/{other}/control-state")).json()
        assert (final["state"], final["paused"]) == ("CANCELLED", False)


async def test_shannon_errors_are_error_objects(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        task_id = await start_paused(http)
        missing = await http.post("/api/v1/tasks/nope/pause")
        assert (missing.status_code, missing.json()) == (404, {"error": "Task not found"})
        state = await http.get("/api/v1/tasks/nope/control-state")
        assert (state.status_code, state.json()) == (404, {"error": "Task not found"})
        anonymous = await http.post(f"/api/v1/tasks/{task_id}/pause", headers={"X-API-Key": ""})
        assert (anonymous.status_code, anonymous.json()) == (401, {"error": "Unauthorized"})
        bad_inputs = await http.post(
            f"/api/v1/tasks/{task_id}/resume", json={"inputs": {"approved": "maybe"}}
        )
        assert bad_inputs.status_code == 422
        assert bad_inputs.json()["detail"][0]["loc"] == ["body", "inputs", "approved"]
    async with server.client("acme", "viewer") as http:
        forbidden = await http.post(f"/api/v1/tasks/{task_id}/cancel")
        assert (forbidden.status_code, forbidden.json()) == (403, {"error": "Forbidden"})
        assert (await http.get(f"/api/v1/tasks/{task_id}/control-state")).status_code == 200
    async with server.client("globex", "admin") as http:
        hidden = await http.post(f"/api/v1/tasks/{task_id}/cancel")
        assert (hidden.status_code, hidden.json()) == (404, {"error": "Task not found"})


async def test_kubiya_message_is_an_inject(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        execution_id = await start_paused(http)
        reply = await http.post(
            f"/api/v1/executions/{execution_id}/message",
            json={"message": "use the EU region", "role": "system"},
        )
        assert reply.status_code == 202, reply.text
        assert reply.json()["success"] is True
        context = (await http.get(f"/api/v1/executions/{execution_id}")).json()["context"]
        assert [(m["role"], m["message"]) for m in context] == [("system", "use the EU region")]
        bad = await http.post(f"/api/v1/executions/{execution_id}/message", json={"role": "x"})
        assert bad.status_code == 422
        assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {
            ("body", "message"),
            ("body", "role"),
        }
        missing = await http.post("/api/v1/executions/nope/message", json={"message": "hi"})
        assert missing.status_code == 404


async def test_syntropic_routes_have_no_prefix_and_its_reply_shape(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        execution_id = await start_paused(http)
        state = await http.get(f"/executions/{execution_id}/state")
        assert state.json() == {"execution_id": execution_id, "state": "PAUSED"}
        injected = await http.post(f"/executions/{execution_id}/inject", json={"message": "hi"})
        assert injected.status_code == 202
        body = injected.json()
        assert set(body) == {"success", "execution_id", "state", "message", "error"}
        assert (body["success"], body["execution_id"], body["error"]) == (True, execution_id, None)
        resumed = await http.post(
            f"/executions/{execution_id}/resume", json={"inputs": {"approved": True}}
        )
        assert resumed.status_code == 202
        await wait_for(http, execution_id, "COMPLETED")
        late = await http.post(f"/executions/{execution_id}/cancel", json={})
        assert late.status_code == 409
        assert late.json()["success"] is False
        assert "completed" in late.json()["error"]

        other = await start_paused(http)
        paused = await http.post(f"/executions/{other}/pause", json={"reason": "look"})
        assert (paused.status_code, paused.json()["success"]) == (202, True)
        cancelled = await http.post(f"/executions/{other}/cancel")
        assert cancelled.status_code == 202
        await wait_for(http, other, "CANCELLED")
        missing = await http.get("/executions/nope/state")
        assert missing.status_code == 404
        assert missing.json()["error"] == "execution nope not found"
        invalid = await http.post(f"/executions/{other}/inject", json={})
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["body", "message"]
        # Syntropic137 documents the roles user and system only (Kubiya's message takes more).
        assistant = await http.post(
            f"/executions/{other}/inject", json={"message": "hi", "role": "assistant"}
        )
        assert assistant.status_code == 422
        assert assistant.json()["detail"][0]["loc"] == ["body", "role"]
    async with server.client("acme", "viewer") as http:
        forbidden = await http.post(f"/executions/{other}/pause")
        assert (forbidden.status_code, forbidden.json()["success"]) == (403, False)
        anonymous = await http.get(f"/executions/{other}/state", headers={"X-API-Key": ""})
        assert anonymous.status_code == 401
