"""Secrets over HTTP: admins set, list and delete them; no response ever carries a value."""

from __future__ import annotations

from tests.api.conftest import RunningServer

VALUE = "s3cr3t-value-never-returned"


async def test_put_list_delete_without_ever_returning_a_value(server: RunningServer) -> None:
    async with server.client("acme", "admin") as http:
        put = await http.put("/api/v1/secrets/SLACK_TOKEN", json={"value": VALUE})
        assert (put.status_code, put.content) == (204, b"")
        await http.put("/api/v1/secrets/API_KEY", json={"value": "other"})
        listed = await http.get("/api/v1/secrets")
        assert listed.json() == {"names": ["API_KEY", "SLACK_TOKEN"]}
        assert VALUE not in listed.text
        read = await http.get("/api/v1/secrets/SLACK_TOKEN")
        assert read.status_code == 405
        assert VALUE not in read.text
        replaced = await http.put("/api/v1/secrets/SLACK_TOKEN", json={"value": "new"})
        assert replaced.status_code == 204
        assert (await http.delete("/api/v1/secrets/SLACK_TOKEN")).status_code == 204
        assert (await http.get("/api/v1/secrets")).json() == {"names": ["API_KEY"]}
        assert (await http.delete("/api/v1/secrets/SLACK_TOKEN")).status_code == 404


async def test_secret_errors(server: RunningServer) -> None:
    async with server.client("acme", "admin") as http:
        bad_name = await http.put("/api/v1/secrets/not-a-name", json={"value": "x"})
        assert bad_name.status_code == 422
        assert bad_name.json()["detail"][0]["loc"] == ["path", "name"]
        no_value = await http.put("/api/v1/secrets/TOKEN", json={})
        assert no_value.status_code == 422
        assert no_value.json()["detail"][0]["loc"] == ["body", "value"]
        await http.put("/api/v1/secrets/TOKEN", json={"value": VALUE})
    async with server.client("acme", "operator") as http:
        assert (await http.get("/api/v1/secrets")).status_code == 403
        assert (await http.put("/api/v1/secrets/TOKEN", json={"value": "x"})).status_code == 403
        assert (await http.delete("/api/v1/secrets/TOKEN")).status_code == 403
        anonymous = await http.get("/api/v1/secrets", headers={"X-API-Key": ""})
        assert anonymous.status_code == 401
    async with server.client("globex", "admin") as http:
        assert (await http.get("/api/v1/secrets")).json() == {"names": []}
        assert (await http.delete("/api/v1/secrets/TOKEN")).status_code == 404
