"""Operations endpoints: liveness, readiness (503 without a store), Prometheus metrics."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from pausepoint.api import create_app
from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings
from tests.api.conftest import RunningServer, serving
from tests.api.test_events import start_paused


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


async def test_health_and_readiness_need_no_credentials(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


async def test_not_ready_without_a_store(db_path: Path) -> None:
    engine = Engine(fast_settings(db_path))  # never started: its store is closed
    try:
        async with (
            serving(create_app(engine)) as (base_url, _),
            httpx.AsyncClient(base_url=base_url) as http,
        ):
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"].startswith("unavailable")
    finally:
        await engine.stop()


async def test_metrics_count_executions_control_requests_and_checkpoints(
    server: RunningServer,
) -> None:
    async with server.client("acme", "operator") as http:
        execution_id = await start_paused(http)
        before = (await http.get("/metrics")).text
        assert (await http.post(f"/api/v1/executions/{execution_id}/pause")).status_code == 202
        await http.post(f"/api/v1/executions/{execution_id}/cancel")
        await http.post("/api/v1/executions/nope/pause")
        await http.post(f"/api/v1/tasks/{execution_id}/pause")  # cancelled by now: 409
        await http.post(f"/api/v1/executions/{execution_id}/resume/validate", json={})
        reply = await http.get("/metrics", headers={"X-API-Key": ""})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    assert "# TYPE pausepoint_executions gauge" in text
    assert sample(before, "pausepoint_executions", '{state="PAUSED"}') == 1
    assert sample(text, "pausepoint_executions", '{state="PAUSED"}') == 0
    assert sample(text, "pausepoint_executions", '{state="CANCELLED"}') == 1
    counter = "pausepoint_control_requests_total"
    assert sample(text, counter, '{op="pause",result="accepted"}') == 1
    assert sample(text, counter, '{op="cancel",result="accepted"}') == 1
    assert sample(text, counter, '{op="pause",result="not_found"}') == 1
    assert sample(text, counter, '{op="pause",result="conflict"}') == 1
    assert 'op="resume"' not in text  # resume/validate is a dry run, not a control request
    assert "# TYPE pausepoint_checkpoint_seconds histogram" in text
    count = sample(text, "pausepoint_checkpoint_seconds_count")
    assert count > 0
    assert sample(text, "pausepoint_checkpoint_seconds_bucket", '{le="+Inf"}') == count


async def test_openapi_documents_every_new_route(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/flows",
        "/api/v1/flows/{namespace}/{flow_id}",
        "/api/v1/flows/validate",
        "/api/v1/executions/{execution_id}/events",
        "/api/v1/events",
        "/api/v1/executions/bulk/{op}",
        "/api/v1/tasks/{task_id}/pause",
        "/api/v1/tasks/{task_id}/control-state",
        "/api/v1/executions/{execution_id}/message",
        "/executions/{execution_id}/inject",
        "/executions/{execution_id}/state",
        "/api/v1/secrets/{name}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path


async def test_every_authenticated_operation_documents_401_and_429(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "401" in operation.get("responses", {}) and "429" not in operation["responses"]
    ]
    assert not undocumented, undocumented
