"""Tenancy over real HTTP: another organization's ids are indistinguishable from unknown ids.

Routes are taken from the live ``/openapi.json``, so routes added later are
covered too: every route whose path names an execution, a flow, a secret or a
key answers another organization's id with the very 404 it gives a random id
(apart from the id itself), and changes nothing. Lists never show another
organization's executions or flows.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import RunningServer
from tests.api.matrix_support import (
    assert_sane,
    audit,
    gated_server,
    gates,
    operations,
    path_params,
    request_body,
    start,
    state_of,
    wait_started,
)

ACME_ONLY_FLOW = """
id: acme_only
namespace: api.tenancy
triggers:
  - id: acme_trigger
    type: io.kestra.plugin.core.trigger.Webhook
    key: acme-hook-key
tasks:
  - id: only
    type: return
    format: secret plans
"""

SECRET_NAME = "ACME_ONLY_SECRET"
PROBER = "globex"  # the organization that asks for acme's resources


class Ids:
    """acme's resources, and random ones of the same shape."""

    def __init__(self, execution_id: str, key_id: str) -> None:
        self.execution_id = execution_id
        self.key_id = key_id
        self.random_execution = uuid.uuid4().hex[:24]
        self.random_key = uuid.uuid4().hex[:12]

    def fill(
        self, path: str, operation: dict[str, Any], *, real: bool
    ) -> tuple[str, list[str]] | None:
        """``path`` with acme's ids (or random ones), and the ids used; None if unknown.

        Path parameters that are a choice (an enum, such as a bulk operation) take
        their first value; they name no resource.
        """
        values: dict[str, str] = {}
        used: list[str] = []
        flows = "/flows/" in path or "/webhook/" in path
        for name in path_params(path):
            choices = enum_of(operation, name)
            if choices:
                values[name] = choices[0]
                continue
            if name == "tenant":
                values[name] = PROBER  # past the tenant check, to the ids themselves
                continue
            if name == "token":
                # A callback token is its own credential and names its organization:
                # no id of another organization's goes in its path.
                values[name] = "not-a-callback-token"
                continue
            if name == "namespace":
                value = "api.tenancy" if real else "api.nowhere"
            elif flows and name in ("id", "flow_id"):
                value = "acme_only" if real else "no_such_flow"
            elif name in ("execution_id", "id", "task_id", "workflow_id"):
                value = self.execution_id if real else self.random_execution
            elif name in ("name", "secret", "secret_name"):
                value = SECRET_NAME if real else "NO_SUCH_SECRET"
            elif name in ("key_id",):
                value = self.key_id if real else self.random_key
            elif name == "pause_id":  # an approval request: the execution is the resource
                value = "p-t1"
            elif name == "trigger_id":
                value = "acme_trigger" if real else "no_such_trigger"
            elif name == "key":  # a webhook's key: acme's own, through another tenant
                value = "acme-hook-key" if real else "no-such-hook-key"
            else:
                return None
            values[name] = value
            used.append(value)
        return re.sub(r"{([^}]+)}", lambda m: values[m.group(1)], path), used


def enum_of(operation: dict[str, Any], name: str) -> list[str]:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["name"] == name:
            return list(parameter.get("schema", {}).get("enum", []))
    return []


def scrub(text: str, ids: list[str]) -> str:
    for value in sorted(ids, key=len, reverse=True):
        text = text.replace(value, "<ID>")
    return re.sub(r"(api\.)?<ID>(\.<ID>)?", "<ID>", text)


async def acme_resources(server: RunningServer, http: httpx.AsyncClient) -> Ids:
    scoped = server.engine.as_org("acme")
    await scoped.put_flow(ACME_ONLY_FLOW)
    await scoped.put_secret(SECRET_NAME, "s3cret")
    _, key = await scoped.create_api_key("viewer", "tenancy probe")
    key_name = gates.new_key("tenancy")
    execution_id = await start(http, "slow", {"key": key_name})
    await wait_started(key_name)
    return Ids(execution_id, key.id)


# PUT creates or replaces the caller's own resource of that name: no 404 expected.
UPSERTS = ("PUT",)


async def test_every_route_answers_another_orgs_ids_as_unknown(db_path: Path) -> None:
    async with (
        gated_server(db_path) as server,
        server.client("acme", "admin") as acme,
        server.client("globex", "admin") as globex,
    ):
        ids = await acme_resources(server, acme)
        spec = (await globex.get("/openapi.json")).json()
        checked: list[str] = []
        unmapped: list[str] = []
        for method, path, operation in operations(spec):
            if not path_params(path) or method in UPSERTS:
                continue
            theirs = ids.fill(path, operation, real=True)
            unknown = ids.fill(path, operation, real=False)
            if theirs is None or unknown is None:
                unmapped.append(f"{method} {path}")
                continue
            if not theirs[1]:
                continue  # names no resource (bulk routes: see their own test)
            kwargs = request_body(operation, spec)
            headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
            cross = await globex.request(method, theirs[0], headers=headers, **kwargs)
            random = await globex.request(method, unknown[0], headers=headers, **kwargs)
            where = f"{method} {path}: {cross.status_code} {cross.text}"
            assert_sane(cross)
            assert cross.status_code == 404, where
            assert random.status_code == 404, f"{method} {path} (random id): {random.text}"
            assert scrub(cross.text, theirs[1]) == scrub(random.text, unknown[1]), (
                f"{method} {path} tells another org's id from an unknown one:\n"
                f"  theirs:  {cross.text}\n  unknown: {random.text}"
            )
            checked.append(f"{method} {path}")
        assert not unmapped, f"routes with path parameters this test cannot fill: {unmapped}"
        assert "POST /api/v1/executions/{execution_id}/cancel" in checked, checked
        assert "GET /api/v1/executions/{execution_id}/audit" in checked, checked

        # Nothing globex sent touched acme's execution, flow, secret or key.
        assert (await state_of(acme, ids.execution_id))["state"] == "RUNNING"
        assert await audit(acme, ids.execution_id) == []
        scoped = server.engine.as_org("acme")
        assert [f.flow_id for f in await scoped.list_flows()].count("acme_only") == 1
        assert SECRET_NAME in await scoped.secret_names()
        assert any(
            k.id == ids.key_id and k.revoked_at is None for k in await scoped.list_api_keys()
        )


async def test_starting_another_orgs_flow_is_the_404_of_an_unknown_flow(db_path: Path) -> None:
    async with (
        gated_server(db_path) as server,
        server.client("globex", "admin") as globex,
    ):
        await server.engine.as_org("acme").put_flow(ACME_ONLY_FLOW)
        theirs = await globex.post(
            "/api/v1/executions", json={"namespace": "api.tenancy", "flow_id": "acme_only"}
        )
        unknown = await globex.post(
            "/api/v1/executions", json={"namespace": "api.tenancy", "flow_id": "no_such_flow"}
        )
        assert theirs.status_code == 404, theirs.text
        assert unknown.status_code == 404, unknown.text
        assert theirs.text.replace("acme_only", "<ID>") == unknown.text.replace(
            "no_such_flow", "<ID>"
        )


async def test_bulk_routes_treat_another_orgs_ids_as_unknown(db_path: Path) -> None:
    async with (
        gated_server(db_path) as server,
        server.client("acme", "admin") as acme,
        server.client("globex", "admin") as globex,
    ):
        spec = (await globex.get("/openapi.json")).json()
        bulk = [
            (method, path.replace("{op}", op))
            for method, path, operation in operations(spec)
            if "/bulk/" in path and method == "POST"
            for op in (enum_of(operation, "op") or [""])
        ]
        assert all("{" not in path for _, path in bulk), bulk
        ids = await acme_resources(server, acme)
        for method, path in bulk:
            extra = {"reason": "tenancy"} if path.endswith("/terminate") else {}
            for dry_run in (True, False):
                body = {"ids": [ids.execution_id], "dry_run": dry_run, **extra}
                cross = await globex.request(method, path, json=body)
                assert_sane(cross)
                assert cross.status_code == 200, f"{path}: {cross.text}"
                assert [item["status"] for item in cross.json()["results"]] == [404], cross.text
                random_body = {**body, "ids": [ids.random_execution]}
                random = await globex.request(method, path, json=random_body)
                assert scrub(cross.text, [ids.execution_id]) == scrub(
                    random.text, [ids.random_execution]
                ), f"{path}: {cross.text} vs {random.text}"
                # A filter matches only the caller's own executions.
                filtered = await globex.request(
                    method,
                    path,
                    json={"filter": {"state": ["RUNNING"]}, "dry_run": dry_run, **extra},
                )
                assert_sane(filtered)
                assert filtered.status_code == 200, f"{path}: {filtered.text}"
                assert ids.execution_id not in filtered.text, filtered.text
        assert (await state_of(acme, ids.execution_id))["state"] == "RUNNING"
        assert await audit(acme, ids.execution_id) == []


async def list_everything(http: httpx.AsyncClient, path: str, **params: Any) -> str:
    reply = await http.get(path, params=params)
    assert reply.status_code == 200, reply.text
    return reply.text


async def test_lists_never_show_another_orgs_executions_or_flows(db_path: Path) -> None:
    async with (
        gated_server(db_path) as server,
        server.client("acme", "admin") as acme,
        server.client("globex", "admin") as globex,
    ):
        ids = await acme_resources(server, acme)
        labelled = await start(acme, "quick", labels={"team": "acme-secret"})
        own = await start(globex, "quick")

        for params in (
            {},
            {"state": "RUNNING"},
            {"namespace": "api.matrix"},
            {"flow_id": "slow"},
            {"label": "team:acme-secret"},
            {"limit": 500},
        ):
            text = await list_everything(globex, "/api/v1/executions", **params)
            assert ids.execution_id not in text and labelled not in text, (params, text)
        assert own in await list_everything(globex, "/api/v1/executions")
        assert ids.execution_id in await list_everything(acme, "/api/v1/executions")
        assert own not in await list_everything(acme, "/api/v1/executions", limit=500)

        spec = (await globex.get("/openapi.json")).json()
        lists = {path for method, path, _ in operations(spec) if method == "GET"}
        if "/api/v1/flows" in lists:
            text = await list_everything(globex, "/api/v1/flows")
            assert "acme_only" not in text, text
        if "/api/v1/secrets" in lists:
            text = await list_everything(globex, "/api/v1/secrets")
            assert SECRET_NAME not in text, text
        if "/api/v1/keys" in lists:
            text = await list_everything(globex, "/api/v1/keys")
            assert ids.key_id not in text, text
        # The JSON page of the all-executions event feed, where it exists (never wait on SSE).
        if "/api/v1/events" in lists:
            headers = {"Accept": "application/json"}
            async with globex.stream("GET", "/api/v1/events", headers=headers) as reply:
                assert reply.status_code < 500
                if reply.headers.get("content-type", "").startswith("application/json"):
                    text = (await reply.aread()).decode()
                    assert ids.execution_id not in text, text
