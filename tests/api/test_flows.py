"""Flows over HTTP: revisions from YAML or JSON, reads, deletes, validation with lines."""

from __future__ import annotations

import yaml

from tests.api.conftest import RunningServer

FLOW = """id: hello
namespace: api.flows
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: outer
    type: sequential
    tasks:
      - id: greet
        type: log
        message: "hello {{ inputs.name }}"
"""

BROKEN = """id: broken
namespace: api.flows
tasks:
  - id: wait
    type: pause
    pauseDuration: P5X
"""

YAML = {"Content-Type": "application/x-yaml"}


async def test_put_creates_a_revision_and_an_unchanged_source_does_not(
    server: RunningServer,
) -> None:
    async with server.client("acme", "admin") as http:
        first = await http.put("/api/v1/flows/api.flows/hello", content=FLOW, headers=YAML)
        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["namespace"], body["id"], body["revision"]) == ("api.flows", "hello", 1)
        assert body["source"] == FLOW
        same = await http.put("/api/v1/flows/api.flows/hello", content=FLOW, headers=YAML)
        assert same.status_code == 200
        assert same.json()["revision"] == 1
        changed = FLOW.replace("world", "there")
        second = await http.put(
            "/api/v1/flows/api.flows/hello", content=changed, headers={"Content-Type": "text/yaml"}
        )
        assert second.status_code == 201
        assert second.json()["revision"] == 2

        old = await http.get("/api/v1/flows/api.flows/hello", params={"revision": 1})
        assert old.status_code == 200
        assert old.json()["source"] == FLOW
        latest = (await http.get("/api/v1/flows/api.flows/hello")).json()
        assert latest["revision"] == 2
        assert latest["task_ids"] == ["outer", "greet"]
        assert latest["inputs_schema"]["properties"]["name"]["default"] == "there"


async def test_a_json_body_is_stored_as_yaml(server: RunningServer) -> None:
    document = yaml.safe_load(FLOW)
    async with server.client("acme", "admin") as http:
        put = await http.put("/api/v1/flows/api.flows/hello", json=document)
        assert put.status_code == 201, put.text
        assert yaml.safe_load(put.json()["source"]) == document
        assert not put.json()["source"].lstrip().startswith("{")
        listed = (await http.get("/api/v1/flows")).json()
        assert {"namespace": "api.flows", "id": "hello"}.items() <= next(
            f for f in listed if f["id"] == "hello"
        ).items()


async def test_path_and_body_must_name_the_same_flow(server: RunningServer) -> None:
    async with server.client("acme", "admin") as http:
        reply = await http.put("/api/v1/flows/other.ns/hello", content=FLOW, headers=YAML)
        assert reply.status_code == 422
        assert [e["loc"] for e in reply.json()["detail"]] == [["body", "namespace"]]
        reply = await http.put("/api/v1/flows/api.flows/hi", content=FLOW, headers=YAML)
        assert [e["loc"] for e in reply.json()["detail"]] == [["body", "id"]]
        assert (await http.get("/api/v1/flows/other.ns/hello")).status_code == 404


async def test_an_invalid_flow_is_a_422_naming_the_field_and_line(server: RunningServer) -> None:
    async with server.client("acme", "admin") as http:
        reply = await http.put("/api/v1/flows/api.flows/broken", content=BROKEN, headers=YAML)
        assert reply.status_code == 422
        (error,) = reply.json()["detail"]
        assert error["loc"] == ["body", "tasks", 0, "pauseDuration"]
        assert error["line"] == 6
        assert "ISO-8601" in error["msg"]
        not_yaml = await http.put("/api/v1/flows/api.flows/x", content="id: [", headers=YAML)
        assert not_yaml.status_code == 422
        assert not_yaml.json()["detail"][0]["line"] is not None
        not_object = await http.put("/api/v1/flows/api.flows/x", json=[1, 2])
        assert not_object.status_code == 422
        assert not_object.json()["detail"][0]["loc"] == ["body"]
        wrong_type = await http.put(
            "/api/v1/flows/api.flows/x", content=b"x", headers={"Content-Type": "image/png"}
        )
        assert wrong_type.status_code == 422
        assert wrong_type.json()["detail"][0]["loc"] == ["header", "Content-Type"]


async def test_validate_stores_nothing(server: RunningServer) -> None:
    async with server.client("acme", "viewer") as http:
        ok = await http.post("/api/v1/flows/validate", content=FLOW, headers=YAML)
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"valid": True, "namespace": "api.flows", "id": "hello"}
        bad = await http.post("/api/v1/flows/validate", json=yaml.safe_load(BROKEN))
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "tasks", 0, "pauseDuration"]
        assert (await http.get("/api/v1/flows/api.flows/hello")).status_code == 404


async def test_validate_and_put_refuse_a_function_the_operator_does_not_allow(
    server: RunningServer,
) -> None:
    escape = """
id: escape
namespace: api.flows
tasks:
  - id: run
    type: python
    function: os:system
"""
    async with server.client("acme", "admin") as http:
        for reply in (
            await http.post("/api/v1/flows/validate", content=escape, headers=YAML),
            await http.put("/api/v1/flows/api.flows/escape", content=escape, headers=YAML),
        ):
            assert reply.status_code == 422, reply.text
            problem = reply.json()["detail"][0]
            assert problem["loc"] == ["body", "tasks", 0, "function"], problem
            assert "python_modules" in problem["msg"], problem
        assert (await http.get("/api/v1/flows/api.flows/escape")).status_code == 404


async def test_delete_then_unknown(server: RunningServer) -> None:
    async with server.client("acme", "admin") as http:
        await http.put("/api/v1/flows/api.flows/hello", content=FLOW, headers=YAML)
        deleted = await http.delete("/api/v1/flows/api.flows/hello")
        assert deleted.status_code == 204
        assert (await http.get("/api/v1/flows/api.flows/hello")).status_code == 404
        assert (await http.delete("/api/v1/flows/api.flows/hello")).status_code == 404
        ids = [f["id"] for f in (await http.get("/api/v1/flows")).json()]
        assert "hello" not in ids and "approval" in ids


async def test_flows_need_admin_and_belong_to_one_organization(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        put = await http.put("/api/v1/flows/api.flows/hello", content=FLOW, headers=YAML)
        assert put.status_code == 403
        assert (await http.delete("/api/v1/flows/api.tests/approval")).status_code == 403
        assert (await http.get("/api/v1/flows/api.tests/approval")).status_code == 200
        anonymous = await http.get("/api/v1/flows", headers={"X-API-Key": ""})
        assert anonymous.status_code == 401
    async with server.client("acme", "admin") as http:
        await http.put("/api/v1/flows/api.flows/hello", content=FLOW, headers=YAML)
    async with server.client("globex", "admin") as http:
        assert (await http.get("/api/v1/flows/api.flows/hello")).status_code == 404
        assert (await http.delete("/api/v1/flows/api.flows/hello")).status_code == 404
        assert "hello" not in [f["id"] for f in (await http.get("/api/v1/flows")).json()]
