"""The server answers over real HTTP: start, pause, resume, terminate, errors."""

from __future__ import annotations

from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer


async def test_start_pause_resume_complete_over_http(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        started = await http.post(
            "/api/v1/executions", json={"namespace": "api.tests", "flow_id": "approval"}
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["id"]

        async def paused() -> bool:
            state = (await http.get(f"/api/v1/executions/{execution_id}/state")).json()
            return bool(state["state"] == "PAUSED")

        await assert_eventually(paused)
        bad = await http.post(
            f"/api/v1/executions/{execution_id}/resume", json={"inputs": {"approved": "maybe"}}
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "inputs", "approved"]
        ok = await http.post(
            f"/api/v1/executions/{execution_id}/resume", json={"inputs": {"approved": True}}
        )
        assert ok.status_code == 202, ok.text
        assert ok.json()["success"] is True

        async def completed() -> bool:
            state = (await http.get(f"/api/v1/executions/{execution_id}/state")).json()
            return bool(state["state"] == "COMPLETED")

        await assert_eventually(completed)
        late = await http.post(f"/api/v1/executions/{execution_id}/pause")
        assert late.status_code == 409
        assert "completed" in late.json()["detail"]


async def test_no_key_is_401_and_a_viewer_cannot_control(server: RunningServer) -> None:
    async with server.client("acme", "viewer") as http:
        anonymous = await http.get("/api/v1/executions", headers={"X-API-Key": ""})
        assert anonymous.status_code == 401
        started = await http.post(
            "/api/v1/executions", json={"namespace": "api.tests", "flow_id": "approval"}
        )
        assert started.status_code == 403
