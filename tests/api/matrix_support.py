"""Shared pieces of the HTTP matrix tests: flows, a gated server, polling, reply checks.

Everything here talks to the server over HTTP, except the setup steps a user
would do once (storing flows, creating keys), which go through the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import RunningServer, running_server

HERE = Path(__file__).resolve().parent
# The module the python tasks import through Settings.python_paths, not a copy of it.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
gates = importlib.import_module("flows_gates")

NAMESPACE = "api.matrix"
TERMINAL = {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}
TIMEOUT = 10.0

_KEY_INPUT = """
inputs:
  - id: key
    type: STRING
"""

SLOW = f"""
id: slow
namespace: {NAMESPACE}
{_KEY_INPUT}
tasks:
  - id: work
    type: python
    function: flows_gates:step
    kwargs:
      key: "{{{{ inputs.key }}}}"
  - id: after
    type: return
    format: done
"""

SLOW_WITH_FINALLY = f"""
id: slow_finally
namespace: {NAMESPACE}
{_KEY_INPUT}
tasks:
  - id: work
    type: python
    function: flows_gates:step
    kwargs:
      key: "{{{{ inputs.key }}}}"
finally:
  - id: cleanup
    type: python
    function: flows_gates:step
    kwargs:
      key: "{{{{ inputs.key }}}}-cleanup"
"""

QUICK = f"""
id: quick
namespace: {NAMESPACE}
tasks:
  - id: only
    type: return
    format: done
"""

FAILING = f"""
id: failing
namespace: {NAMESPACE}
tasks:
  - id: explode
    type: python
    function: flows_gates:boom
"""

TIMING_OUT = f"""
id: timing_out
namespace: {NAMESPACE}
timeout: PT0.2S
{_KEY_INPUT}
tasks:
  - id: work
    type: python
    function: flows_gates:step
    kwargs:
      key: "{{{{ inputs.key }}}}"
"""

WARNS = f"""
id: warns
namespace: {NAMESPACE}
tasks:
  - id: wait
    type: pause
    pauseDuration: PT0.1S
    behavior: WARN
  - id: after
    type: return
    format: done
"""

FLOWS = (SLOW, SLOW_WITH_FINALLY, QUICK, FAILING, TIMING_OUT, WARNS)


@contextlib.asynccontextmanager
async def gated_server(db_path: Path, **overrides: Any) -> AsyncIterator[RunningServer]:
    """A server whose python tasks can import :mod:`flows_gates`, with the matrix flows."""
    overrides.setdefault("python_paths", (str(HERE),))
    async with running_server(db_path, **overrides) as server:
        for org in ("acme", "globex"):
            for source in FLOWS:
                await server.engine.as_org(org).put_flow(source)
        try:
            yield server
        finally:
            gates.release_all()


def big_pool_client(server: RunningServer, org: str = "acme", role: str = "operator") -> Any:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    return httpx.AsyncClient(
        base_url=server.base_url, headers=server.headers(org, role), timeout=30, limits=limits
    )


async def start(
    http: httpx.AsyncClient,
    flow_id: str,
    inputs: dict[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    labels: dict[str, str] | None = None,
) -> str:
    reply = await http.post(
        "/api/v1/executions",
        json={
            "namespace": namespace,
            "flow_id": flow_id,
            "inputs": inputs or {},
            "labels": labels or {},
        },
    )
    assert reply.status_code == 201, reply.text
    execution_id: str = reply.json()["id"]
    return execution_id


async def state_of(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    reply = await http.get(f"/api/v1/executions/{execution_id}/state")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def wait_state(
    http: httpx.AsyncClient, execution_id: str, *states: str, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """Poll ``/state`` until the execution is in one of ``states``; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        current = await state_of(http, execution_id)
        if current["state"] in states:
            return current
        if loop.time() > deadline:
            raise AssertionError(
                f"execution {execution_id} is {current['state']}, not {states}, after {timeout}s"
            )
        await asyncio.sleep(0.02)


async def wait_started(key: str, timeout: float = TIMEOUT) -> None:
    await asyncio.wait_for(gates.gate(key).started.wait(), timeout)


async def audit(http: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    reply = await http.get(f"/api/v1/executions/{execution_id}/audit")
    assert reply.status_code == 200, reply.text
    commands: list[dict[str, Any]] = reply.json()
    return commands


async def wait_settled(
    http: httpx.AsyncClient, execution_id: str, timeout: float = TIMEOUT
) -> list[dict[str, Any]]:
    """The audit once no command is pending any more."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        commands = await audit(http, execution_id)
        pending = [c for c in commands if c["status"] == "pending"]
        if not pending:
            return commands
        if loop.time() > deadline:
            raise AssertionError(f"commands still pending after {timeout}s: {pending}")
        await asyncio.sleep(0.02)


def assert_sane(reply: httpx.Response) -> None:
    """No 5xx, and never a 2xx that says it did not succeed."""
    assert reply.status_code < 500, f"{reply.request.method} {reply.request.url}: {reply.text}"
    if 200 <= reply.status_code < 300 and "json" in reply.headers.get("content-type", ""):
        body = reply.json()
        if isinstance(body, dict) and "success" in body:
            assert body["success"] is True, reply.text


# -- OpenAPI ------------------------------------------------------------------------

METHODS = ("get", "post", "put", "patch", "delete")


def operations(spec: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """Every (METHOD, path, operation) the OpenAPI document lists."""
    for path, item in sorted(spec["paths"].items()):
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def path_params(path: str) -> list[str]:
    return re.findall(r"{([^}]+)}", path)


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def sample(schema: dict[str, Any], spec: dict[str, Any], name: str = "") -> Any:
    """A small valid value for ``schema`` (required fields only)."""
    schema = _resolve(schema, spec)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            options = [s for s in schema[combinator] if _resolve(s, spec).get("type") != "null"]
            return sample(options[0] if options else schema[combinator][0], spec, name)
    if "allOf" in schema:
        return sample(schema["allOf"][0], spec, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {
            key: sample(props[key], spec, key) for key in schema.get("required", []) if key in props
        }
    if kind == "array":
        return [sample(schema.get("items", {}), spec, name)] * int(schema.get("minItems", 0))
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    text = {"message": "hello", "reason": "testing"}.get(name, "x")
    return text * max(1, int(schema.get("minLength", 1)))


def request_body(operation: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments for a minimal valid body of ``operation`` (none if it has none)."""
    body = operation.get("requestBody")
    if not body:
        return {}
    content = body.get("content", {})
    for media in content:
        if "yaml" in media:
            return {"content": QUICK.encode(), "headers": {"Content-Type": media}}
    if "application/json" in content:
        return {"json": sample(content["application/json"].get("schema", {}), spec)}
    if "multipart/form-data" in content:  # a form of no fields (Kestra's inputs)
        return {"content": b"", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}
    return {"content": b"x", "headers": {"Content-Type": next(iter(content), "text/plain")}}
