"""GET /api/v1/me: who the credentials say the caller is (the web UI asks after sign-in)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import RunningServer


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
async def test_me_names_the_org_role_and_subject_of_the_key(
    server: RunningServer, role: str
) -> None:
    async with server.client("globex", role) as client:
        reply = await client.get("/api/v1/me")
    assert reply.status_code == 200
    body = reply.json()
    assert (body["org"], body["role"]) == ("globex", role)
    assert body["subject"].startswith("key:")
    assert body["groups"] == []


async def test_me_without_credentials_is_401(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        reply = await client.get("/api/v1/me")
    assert reply.status_code == 401


async def test_the_web_ui_loads_without_credentials_and_the_api_routes_stay_put(
    server: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        index = await client.get("/")
        script = await client.get("/ui/js/main.js")
        health = await client.get("/healthz")
        openapi = await client.get("/openapi.json")
        missing = await client.get("/ui/no-such-page.html")
    async with server.client() as client:
        api_route_wrong_method = await client.get("/api/v1/secrets/NAME")
    assert index.status_code == 200 and "<title>pausepoint</title>" in index.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert health.json() == {"status": "ok"}
    assert "/api/v1/me" in openapi.json()["paths"]
    assert missing.status_code == 404
    assert api_route_wrong_method.status_code == 405
