"""Hostile input over real HTTP: every user mistake or attack gets a precise 4xx, never a 5xx.

- bodies over ``max_body_bytes`` get 413, also chunked without a Content-Length;
- JSON nested 100,000 levels deep (execution inputs, resume inputs, flow JSON,
  bulk inputs) is refused at once, and values nested deeper than flows may nest
  are refused naming the field before anything is stored;
- invalid UTF-8 in JSON and YAML bodies, query strings and paths is a 422 naming it;
- CR/LF in headers is never reflected; the request id is echoed only when it
  is a plain token; headers over 64 KiB in total get 431;
- hypothesis: random flow documents through ``PUT /flows`` and
  ``POST /flows/validate`` get 2xx or a 422 naming the place, both routes agree,
  nothing hangs; random resume inputs against a Pause task declaring every input
  type get 202 or a 422 naming the field, the dry run agrees with the real
  resume, a 422 leaves the pause point open and a 202 records exactly the values
  the dry run announced;
- durations past any date (a ten-thousand-year pause) are refused where written;
- shell tasks and template sandbox escapes submitted over HTTP never run;
- SSE clients that never read: the execution still completes, the channel
  window, the organization inboxes and each connection's send buffer stay
  bounded, and the streams are dropped once the clients go away; twenty of
  them hold the engine up and keep alive no more than about one window.

``PAUSEPOINT_HOSTILE_EXAMPLES`` sets the hypothesis examples per fuzz test (default 60).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import socket
import struct
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pausepoint.api import create_app, sse
from pausepoint.api.middleware import MAX_HEADER_BYTES
from pausepoint.api.sse import StreamTiming
from pausepoint.flow.inputs import INPUT_TYPES
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually, fast_settings
from tests.api.conftest import RunningServer, running_server, serving

EXAMPLES = int(os.environ.get("PAUSEPOINT_HOSTILE_EXAMPLES", "60"))
LIMIT = 64 * 1024
YAML = {"Content-Type": "application/x-yaml"}
JSON = {"Content-Type": "application/json"}
TERMINAL = {"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"}

DEEP_FLOW = """
id: deep
namespace: api.hostile
inputs:
  - id: payload
    type: JSON
    required: false
tasks:
  - id: ask
    type: pause
    onResume:
      - id: doc
        type: JSON
"""


def too_large(limit: int) -> dict[str, str]:
    return {
        "detail": f"request body too large: the limit is {limit} bytes",
        "code": "body_too_large",
    }


def fuzz_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


async def start(http: httpx.AsyncClient, flow_id: str, inputs: dict[str, Any] | None = None) -> str:
    namespace = "api.tests" if flow_id == "approval" else "api.hostile"
    reply = await http.post(
        "/api/v1/executions",
        json={"namespace": namespace, "flow_id": flow_id, "inputs": inputs or {}},
    )
    assert reply.status_code == 201, reply.text
    execution_id: str = reply.json()["id"]
    return execution_id


async def wait_state(http: httpx.AsyncClient, execution_id: str, *states: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        reply = await http.get(f"/api/v1/executions/{execution_id}/state")
        assert reply.status_code == 200, reply.text
        seen.update(reply.json())
        return seen["state"] in states

    await assert_eventually(reached)
    return seen


async def assert_healthy(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        assert (await http.get("/healthz")).status_code == 200
        execution_id = await start(http, "approval")
        await wait_state(http, execution_id, "PAUSED")


def assert_names_field(reply: httpx.Response, *loc: str | int) -> list[dict[str, Any]]:
    """A 422 in FastAPI's shape whose first error is at ``loc`` (a prefix of it)."""
    assert reply.status_code == 422, f"{reply.status_code} {reply.text[:300]}"
    detail = reply.json()["detail"]
    assert isinstance(detail, list) and detail, reply.text
    for error in detail:
        assert isinstance(error["loc"], list) and error["msg"] and error["type"], error
    assert tuple(detail[0]["loc"][: len(loc)]) == loc, detail
    errors: list[dict[str, Any]] = detail
    return errors


# -- raw HTTP -------------------------------------------------------------------------------------


@dataclass
class RawReply:
    status: int
    headers: list[tuple[str, str]]
    head: bytes  # the status line and headers exactly as sent
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


async def raw_request(base_url: str, request: bytes) -> RawReply:
    """Send ``request`` as bytes on a new connection; read the reply until the server closes."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return RawReply(int(lines[0].split()[1]), headers, head, body)


def get(path: str, *headers: bytes) -> bytes:
    return (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\n"
    )


# -- bodies over the limit ------------------------------------------------------------------------


@pytest.fixture
async def small(db_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_path, max_body_bytes=LIMIT) as running:
        yield running


async def chunks(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def test_bodies_over_the_limit_get_413_also_when_chunked(small: RunningServer) -> None:
    padding = "x" * LIMIT
    big_start = json.dumps(
        {"namespace": "api.tests", "flow_id": "approval", "labels": {"p": padding}}
    )
    big_flow = (
        f"id: big\nnamespace: api.tests\n# {padding}\n"
        "tasks:\n  - {id: a, type: log, message: m}\n"
    )
    async with small.client("acme", "admin") as http:
        execution_id = await start(http, "approval")
        sent: list[tuple[str, str, bytes | AsyncIterator[bytes], dict[str, str]]] = [
            ("POST", "/api/v1/executions", big_start.encode(), JSON),
            ("PUT", "/api/v1/flows/api.tests/big", big_flow.encode(), YAML),
            ("POST", "/api/v1/flows/validate", chunks(big_flow.encode()), YAML),
            ("POST", f"/api/v1/executions/{execution_id}/inject", chunks(big_start.encode()), JSON),
        ]
        for method, path, content, headers in sent:
            reply = await http.request(method, path, content=content, headers=headers)
            chunked = not isinstance(content, bytes)
            assert ("content-length" not in reply.request.headers) is chunked
            assert reply.status_code == 413, f"{method} {path}: {reply.status_code} {reply.text}"
            assert reply.json() == too_large(LIMIT)
            assert reply.headers["x-request-id"]

        # Nothing of what was refused was kept; a body of exactly the limit is fine.
        assert (await http.get("/api/v1/flows/api.tests/big")).status_code == 404
        audit = (await http.get(f"/api/v1/executions/{execution_id}/audit")).json()
        assert audit == []
        exact = big_flow.replace(padding, padding[: LIMIT - len(big_flow.encode()) + len(padding)])
        assert len(exact.encode()) == LIMIT
        fits = await http.post("/api/v1/flows/validate", content=exact.encode(), headers=YAML)
        assert fits.status_code == 200, fits.text
    await assert_healthy(small)


# -- nesting --------------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_json_nested_100k_levels_is_refused_at_once(server: RunningServer) -> None:
    bomb = nested(100_000)
    async with server.client("acme", "admin") as http:
        await server.engine.as_org("acme").put_flow(DEEP_FLOW)
        paused = await start(http, "approval")
        await wait_state(http, paused, "PAUSED")
        targets = [
            (
                "/api/v1/executions",
                '{"namespace": "api.tests", "flow_id": "approval", '
                f'"inputs": {{"amount": {bomb}}}}}',
            ),
            (f"/api/v1/executions/{paused}/resume", f'{{"inputs": {{"approved": {bomb}}}}}'),
            (
                f"/api/v1/executions/{paused}/resume/validate",
                f'{{"inputs": {{"approved": {bomb}}}}}',
            ),
            (
                "/api/v1/executions/bulk/resume",
                f'{{"ids": ["{paused}"], "inputs": {{"a": {bomb}}}}}',
            ),
            ("/api/v1/flows/validate", f'{{"id": "x", "namespace": "api.tests", "tasks": {bomb}}}'),
            (
                "/api/v1/flows/api.tests/x",
                f'{{"id": "x", "namespace": "api.tests", "tasks": {bomb}}}',
            ),
        ]
        for path, body in targets:
            for headers in (JSON, {**JSON, "Idempotency-Key": uuid.uuid4().hex}):
                method = "PUT" if path.startswith("/api/v1/flows/api.tests") else "POST"
                began = time.monotonic()
                reply = await http.request(method, path, content=body, headers=headers)
                took = time.monotonic() - began
                assert_names_field(reply, "body")
                assert took < 3, f"{path} took {took:.1f}s to refuse"
        state = await wait_state(http, paused, "PAUSED")
        assert [p["id"] for p in state["pause_points"]] == ["p-t2"]
    await assert_healthy(server)


async def test_values_nested_deeper_than_a_flow_are_refused_naming_the_field(
    server: RunningServer,
) -> None:
    """Deep enough to parse, too deep to keep: refused before anything is stored."""
    deep = nested(500)
    async with server.client("acme", "admin") as http:
        await server.engine.as_org("acme").put_flow(DEEP_FLOW)
        before = (await http.get("/api/v1/executions", params={"limit": 500})).json()["items"]
        for headers in (JSON, {**JSON, "Idempotency-Key": uuid.uuid4().hex}):
            body = (
                '{"namespace": "api.hostile", "flow_id": "deep", '
                f'"inputs": {{"payload": {deep}}}}}'
            )
            reply = await http.post("/api/v1/executions", content=body, headers=headers)
            errors = assert_names_field(reply, "inputs", "payload")
            assert "nested at most 100 levels" in errors[0]["msg"], errors
            as_text = json.dumps(
                {"namespace": "api.hostile", "flow_id": "deep", "inputs": {"payload": deep}}
            )
            reply = await http.post("/api/v1/executions", content=as_text, headers=headers)
            assert_names_field(reply, "inputs", "payload")
        after = (await http.get("/api/v1/executions", params={"limit": 500})).json()["items"]
        assert len(after) == len(before), "a refused start stored an execution"

        paused = await start(http, "deep")
        await wait_state(http, paused, "PAUSED")
        for route in ("resume/validate", "resume"):
            reply = await http.post(
                f"/api/v1/executions/{paused}/{route}",
                content=f'{{"inputs": {{"doc": {deep}}}}}',
                headers={**JSON, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert_names_field(reply, "body", "inputs", "doc")
        state = await wait_state(http, paused, "PAUSED")
        assert [p["id"] for p in state["pause_points"]] == ["p-t1"]
        assert (await http.get(f"/api/v1/executions/{paused}/audit")).json() == []
        # Exactly at the limit is fine, and reads of what was stored still work.
        ok = await http.post(
            f"/api/v1/executions/{paused}/resume", json={"inputs": {"doc": json.loads(nested(99))}}
        )
        assert ok.status_code == 202, ok.text
        await wait_state(http, paused, "COMPLETED")
        for path in ("", "/events", "/audit"):
            assert (await http.get(f"/api/v1/executions/{paused}{path}")).status_code == 200

        flow = {
            "id": "x",
            "namespace": "api.tests",
            "tasks": [{"id": "a", "type": "log", "message": json.loads(deep)}],
        }
        for method, path in (
            ("POST", "/api/v1/flows/validate"),
            ("PUT", "/api/v1/flows/api.tests/x"),
        ):
            reply = await http.request(method, path, json=flow)
            errors = assert_names_field(reply, "body", "tasks", 0, "message")
            assert "nesting deeper than 100 levels" in errors[0]["msg"], errors
            assert len(errors[0]["loc"]) == 1 + 101, errors


LONG_PAUSE = """
id: long
namespace: api.hostile
inputs:
  - id: wait
    type: STRING
    defaults: PT1S
tasks:
  - id: fixed
    type: pause
    pauseDuration: P4000000D
"""


async def test_durations_past_any_date_are_refused_where_they_are_written(
    server: RunningServer,
) -> None:
    """Ten thousand years of pause once parsed, then left the execution QUEUED for ever."""
    async with server.client("acme", "admin") as http:
        for method, path in (
            ("POST", "/api/v1/flows/validate"),
            ("PUT", "/api/v1/flows/api.hostile/long"),
        ):
            reply = await http.request(method, path, content=LONG_PAUSE, headers=YAML)
            error = assert_names_field(reply, "body", "tasks", 0, "pauseDuration")[0]
            assert "longer than the longest duration" in error["msg"] and error["line"] == 11, error
        templated = LONG_PAUSE.replace("P4000000D", '"{{ inputs.wait }}"')
        stored = await http.put("/api/v1/flows/api.hostile/long", content=templated, headers=YAML)
        assert stored.status_code == 201, stored.text
        execution_id = await start(http, "long", {"wait": "P4000000D"})
        await wait_state(http, execution_id, "FAILED")
        run = (await http.get(f"/api/v1/executions/{execution_id}")).json()["task_runs"][0]
        assert run["state"] == "FAILED" and "longer than the longest duration" in run["error"], run


# -- invalid UTF-8 --------------------------------------------------------------------------------


async def test_invalid_utf8_anywhere_is_a_422_naming_where(server: RunningServer) -> None:
    async with server.client("acme", "admin") as http:
        body = b'{"namespace": "api.tests\xff\xfe", "flow_id": "approval"}'
        reply = await http.post("/api/v1/executions", content=body, headers=JSON)
        assert assert_names_field(reply, "body")[0]["type"] == "body_parse_error"

        flow = (
            b"id: broken\nnamespace: api.tests\ntasks:\n  - {id: a, type: log, message: \xc3\x28}\n"
        )
        for method, path in (
            ("POST", "/api/v1/flows/validate"),
            ("PUT", "/api/v1/flows/api.tests/broken"),
        ):
            reply = await http.request(method, path, content=flow, headers=YAML)
            error = assert_names_field(reply, "body")[0]
            where = f"byte {flow.index(bytes([0xC3]))}"
            assert error["type"] == "unicode_error" and where in error["msg"], error

        reply = await http.get("/api/v1/executions?namespace=%FF%FEx&state=RUNNING")
        error = assert_names_field(reply, "query", "namespace")[0]
        assert error == {
            "loc": ["query", "namespace"],
            "msg": "not valid UTF-8 once percent-decoded",
            "type": "unicode_error",
        }
        for path in (
            "/api/v1/executions/%FF%FE/state",
            "/api/v1/flows/%C3%28/x",
            "/api/v1/executions/%ED%A0%80",
        ):
            assert assert_names_field(await http.get(path), "path")[0]["type"] == "unicode_error"
        # Well-formed UTF-8 still reaches the routes.
        assert (await http.get("/api/v1/executions?namespace=%C3%A9t%C3%A9")).status_code == 200
        assert (await http.get("/api/v1/flows/%C3%A9t%C3%A9/x")).status_code == 404

        # Headers: a key that is not even UTF-8 is a wrong key; a binary Idempotency-Key is
        # just a key, and never echoed.
        anonymous = httpx.AsyncClient(base_url=server.base_url, timeout=10)
        async with anonymous:
            refused = await anonymous.get(
                "/api/v1/executions", headers={b"X-API-Key": b"\xff\xfe\x80"}
            )
            assert refused.status_code == 401, refused.text
        execution_id = await start(http, "approval")
        odd = await http.post(
            f"/api/v1/executions/{execution_id}/inject",
            json={"message": "hi"},
            headers={b"Idempotency-Key": b"\xc3\x28\xff"},
        )
        assert odd.status_code == 202, odd.text
        assert b"\xff" not in b"".join(v for _, v in odd.headers.raw)

    # Raw bytes outside ASCII in the request line never reach the app.
    raw = await raw_request(
        server.base_url,
        b"GET /api/v1/executions?namespace=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert raw.status == 400
    await assert_healthy(server)


# -- headers --------------------------------------------------------------------------------------


async def test_crlf_in_headers_is_never_reflected(server: RunningServer) -> None:
    key = server.keys["acme:operator"].encode()
    # CRLF ends a header line: the "injected" header is just another request header.
    split = await raw_request(
        server.base_url,
        get("/healthz", b"X-Request-Id: abc\r\nSet-Cookie: evil=1", b"X-Injected: 1"),
    )
    assert split.status == 200
    assert split.header("x-request-id") == "abc"
    assert split.header("set-cookie") is None and split.header("x-injected") is None
    # A bare CR or LF inside a value, or a folded line, is a malformed request.
    for header in (
        b"X-Request-Id: abc\nSet-Cookie: evil=1",
        b"X-Request-Id: abc\rSet-Cookie: evil=1",
        b"X-Request-Id: abc\r\n Set-Cookie: evil=1",
        b"Idempotency-Key: k\nSet-Cookie: evil=1",
    ):
        raw = await raw_request(
            server.base_url, get("/api/v1/executions", b"X-API-Key: " + key, header)
        )
        assert raw.status == 400, raw
        assert b"evil" not in raw.head and raw.header("set-cookie") is None

    async with server.client("acme", "operator") as http:
        plain = await http.get("/healthz", headers={"X-Request-ID": "req-1.2:3/4+5=6_7"})
        assert plain.headers["x-request-id"] == "req-1.2:3/4+5=6_7"
        for odd in ("a b", 'a"b', "a;b", "a,b", "<script>", "é"):
            reply = await http.get("/healthz", headers={b"X-Request-ID": odd.encode("latin-1")})
            echoed = reply.headers["x-request-id"]
            assert echoed != odd and re.fullmatch(r"[0-9a-f]{16}", echoed), (odd, echoed)
        long = await http.get("/healthz", headers={"X-Request-ID": "a" * 10_000})
        assert long.headers["x-request-id"] == "a" * 64
        execution_id = await start(http, "approval")
        marker = f"idem-{uuid.uuid4().hex}"
        reply = await http.post(
            f"/api/v1/executions/{execution_id}/inject",
            json={"message": "x"},
            headers={"Idempotency-Key": marker},
        )
        assert reply.status_code == 202
        assert marker not in str(reply.headers.raw)
        too_long = await http.post(
            f"/api/v1/executions/{execution_id}/inject",
            json={"message": "x"},
            headers={"Idempotency-Key": "k" * 256},
        )
        assert_names_field(too_long, "header", "Idempotency-Key")


async def test_absurdly_long_headers_get_431(server: RunningServer) -> None:
    key = server.keys["acme:operator"]
    async with server.client("acme", "operator") as http:
        for headers in (
            {"X-Padding": "p" * MAX_HEADER_BYTES},
            {f"X-Pad-{n}": "p" * 1000 for n in range(80)},
            {"X-API-Key": key + "k" * (2 * MAX_HEADER_BYTES)},
        ):
            reply = await http.get("/api/v1/executions", headers=headers)
            assert reply.status_code == 431, reply.text
            assert reply.json()["code"] == "headers_too_large"
            assert f"the limit is {MAX_HEADER_BYTES}" in reply.json()["detail"]
        # A megabyte of header over a raw socket: refused the same way, and the server lives.
        raw = await raw_request(
            server.base_url,
            get("/api/v1/executions", b"X-API-Key: " + key.encode(), b"X-Big: " + b"b" * 1_000_000),
        )
        assert raw.status == 431
        assert len(raw.head) < 1000, "a header was reflected"
        fine = await http.get("/api/v1/executions", headers={"X-Padding": "p" * 8000})
        assert fine.status_code == 200
    await assert_healthy(server)


# -- fuzzed flows ---------------------------------------------------------------------------------

TASK_TYPES = (
    "pause",
    "io.kestra.plugin.core.flow.Pause",
    "log",
    "return",
    "sequential",
    "parallel",
    "if",
    "switch",
    "foreach",
    "io.kestra.plugin.core.flow.ForEach",
    "shell",
    "python",
    "http",
    "nope",
    "",
)
WORDS = (
    "PT1S",
    "PT0.1S",
    "P1D",
    "P1X",
    "P400000D",
    "RESUME",
    "WARN",
    "FAIL",
    "CANCEL",
    "{{ inputs.x }}",
    "{{ outputs.a.value }}",
    "{{ ''.__class__.__mro__ }}",
    "{% for x in y %}",
    "{{",
    "true",
    "x.y",
    "1e400",
    "~",
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(WORDS),
)
ids = st.one_of(st.sampled_from(("a", "b", "wait", "x.y", "1", "a-b", "é")), st.text(max_size=5))
input_specs = st.fixed_dictionaries(
    {"id": ids, "type": st.sampled_from((*INPUT_TYPES, "NOPE", "string"))},
    optional={
        "required": st.booleans(),
        "defaults": scalars,
        "values": st.lists(scalars, max_size=3),
        "itemType": st.sampled_from(("INT", "JSON", "ARRAY", "x")),
        "min": scalars,
        "max": scalars,
        "validator": st.sampled_from(("[a-z]+", "(", "a{1,3}")),
        "allowCustomValue": st.booleans(),
    },
)


def task_of(children: st.SearchStrategy[Any] | None) -> st.SearchStrategy[dict[str, Any]]:
    """A task with plausible and implausible properties; blocks of ``children`` if given."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "pauseDuration": scalars,
        "behavior": st.sampled_from(("RESUME", "WARN", "FAIL", "CANCEL", "x")),
        "onResume": st.lists(input_specs, max_size=3) | scalars,
        "message": scalars,
        "format": scalars,
        "timeout": scalars,
        "allowFailure": scalars,
        "values": st.lists(scalars, max_size=3) | scalars,
        "condition": scalars,
        "value": scalars,
        "commands": st.lists(st.text(max_size=4), max_size=2),
        "retry": st.fixed_dictionaries(
            {"type": st.sampled_from(("constant", "exponential", "x"))},
            optional={"maxAttempt": st.integers(-1, 4), "interval": scalars},
        ),
    }
    if children is not None:
        blocks = st.lists(children, max_size=3)
        optional |= {
            "tasks": blocks | scalars,
            "then": blocks,
            "else": blocks,
            "cases": st.dictionaries(st.text(max_size=3), blocks, max_size=2),
            "onPause": children,
        }
    return st.fixed_dictionaries(
        {"id": ids, "type": st.sampled_from(TASK_TYPES)}, optional=optional
    )


tasks = st.recursive(task_of(None), task_of, max_leaves=6)
flows = st.fixed_dictionaries(
    {
        "id": ids,
        "namespace": st.sampled_from(("api.fuzz", "api.fuzz.deep", "", "a b", "API")),
        "tasks": st.lists(tasks, max_size=4) | scalars,
    },
    optional={
        "inputs": st.lists(input_specs, max_size=3) | scalars,
        "finally": st.lists(tasks, max_size=2),
        "errors": st.lists(tasks, max_size=2),
        "labels": st.dictionaries(st.text(max_size=4), scalars, max_size=2),
        "description": scalars,
        "timeout": scalars,
        "surprise": scalars,
    },
)


good_inputs: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "id": st.sampled_from(("approved", "note", "n", "when")),
        "type": st.sampled_from(("STRING", "INT", "BOOLEAN", "DATETIME", "JSON", "BOOL")),
    },
    optional={"required": st.booleans(), "description": st.text(max_size=8)},
)
PAUSE_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "pauseDuration": st.sampled_from(("PT1S", "PT0.5S", "P1D")),
    "behavior": st.sampled_from(("RESUME", "WARN", "FAIL", "CANCEL")),
    "onResume": st.lists(good_inputs, max_size=2, unique_by=lambda spec: spec["id"]),
}
good_leaves = st.one_of(
    st.fixed_dictionaries({"type": st.just("log"), "message": st.text(max_size=8)}),
    st.fixed_dictionaries(
        {"type": st.just("return"), "format": st.sampled_from(("x", "{{ task.id }}", "é"))}
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(("pause", "io.kestra.plugin.core.flow.Pause"))},
        optional=PAUSE_OPTIONS,
    ),
)


def good_blocks(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    some = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(("sequential", "parallel")), "tasks": some}),
        st.fixed_dictionaries(
            {"type": st.just("if"), "condition": st.just("{{ true }}"), "then": some}
        ),
    )


good_tasks = st.recursive(good_leaves, good_blocks, max_leaves=6)


def number_tasks(tasks: list[Any], counter: list[int]) -> None:
    """Give every task (nested ones too) an id of its own."""
    for task in tasks:
        task["id"] = f"t{counter[0]}"
        counter[0] += 1
        for block in ("tasks", "then", "else"):
            if isinstance(task.get(block), list):
                number_tasks(task[block], counter)


@st.composite
def mostly_good_flows(draw: st.DrawFn) -> dict[str, Any]:
    """A valid flow, then zero to two properties spoilt."""
    tasks = draw(st.lists(good_tasks, min_size=1, max_size=4))
    number_tasks(tasks, [0])
    flow: dict[str, Any] = {"id": "fuzzed", "namespace": "api.fuzz", "tasks": tasks}
    for _ in range(draw(st.sampled_from((0, 0, 1, 2)))):
        target = draw(st.sampled_from([flow, *tasks]))
        key = draw(st.sampled_from((*sorted(target), "type", "surprise", "pauseDuration")))
        target[key] = draw(scalars)
    return flow


@st.composite
def flow_documents(draw: st.DrawFn) -> str:
    """A flow as YAML text, sometimes damaged the way hands and editors damage YAML."""
    flow = draw(st.one_of(mostly_good_flows(), flows))
    text = yaml.safe_dump(flow, sort_keys=False, allow_unicode=True)
    damage = draw(st.sampled_from(("none", "none", "none", "cut", "insert", "tabs", "anchor")))
    at = draw(st.integers(0, len(text)))
    if damage == "cut":
        text = text[:at]
    elif damage == "insert":
        text = (
            text[:at]
            + draw(st.sampled_from(("\t", ": ", "- ", "[", "&a ", "*a", "\x00", "'")))
            + text[at:]
        )
    elif damage == "tabs":
        text = text.replace("  ", "\t")
    elif damage == "anchor":
        text = "base: &b {id: a, type: log, message: m}\n" + text.replace(
            "- id:", "- <<: *b\n  id:", 1
        )
    return text


def url_part(value: Any, fallback: str) -> str:
    return value if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._-]+", value) else fallback


# Problems of the document as a whole: the body is the place.
WHOLE_DOCUMENT = re.compile(r"^(the flow is empty|a flow must be a mapping\b.*)$")


def check_flow_errors(reply: httpx.Response) -> list[tuple[Any, ...]]:
    """A 422 whose every error names a place: a field path below the body, or a line."""
    assert reply.status_code == 422, f"{reply.status_code} {reply.text[:500]}"
    payload = reply.json()
    assert payload["detail"] and isinstance(payload.get("message", ""), str), payload
    for error in payload["detail"]:
        assert error["loc"][0] == "body" and error["msg"] and error["type"], error
        placed = (
            len(error["loc"]) > 1
            or isinstance(error.get("line"), int)
            or WHOLE_DOCUMENT.match(error["msg"]) is not None
        )
        assert placed, f"an error that names no place: {error} in {payload}"
    return sorted(tuple(map(str, e["loc"])) for e in payload["detail"])


async def test_fuzzed_flow_documents_get_2xx_or_a_422_naming_the_place(
    server: RunningServer,
) -> None:
    headers = {**server.headers("acme", "admin"), **YAML}
    outcomes: dict[int, int] = {}

    @fuzz_settings()
    @given(text=flow_documents())
    def explore(text: str) -> None:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as http:
            validated = http.post("/api/v1/flows/validate", content=text.encode())
            try:
                document = yaml.safe_load(text)
            except yaml.YAMLError:
                document = None
            fields = document if isinstance(document, dict) else {}
            namespace = url_part(fields.get("namespace"), "api.fuzz")
            flow_id = url_part(fields.get("id"), "fuzzed")
            stored = http.put(f"/api/v1/flows/{namespace}/{flow_id}", content=text.encode())
        assert validated.status_code in (200, 422), validated.text
        outcomes[validated.status_code] = outcomes.get(validated.status_code, 0) + 1
        if validated.status_code == 200:
            body = validated.json()
            assert body["valid"] is True
            if (body["namespace"], body["id"]) == (namespace, flow_id):
                assert stored.status_code in (200, 201), stored.text
                assert stored.json()["source"] == text
            else:
                check_flow_errors(stored)
        else:
            # Both routes read a flow the same way: the same errors, at the same places.
            assert check_flow_errors(stored) == check_flow_errors(validated)

    await asyncio.to_thread(explore)
    assert outcomes.get(200, 0) >= EXAMPLES // 10, f"too few valid flows to compare: {outcomes}"
    await assert_healthy(server)


# -- fuzzed resume inputs -------------------------------------------------------------------------

TYPED_FLOW = """
id: typed
namespace: api.hostile
tasks:
  - id: ask
    type: pause
    onResume:
      - {id: s, type: STRING, required: false, validator: "[a-z ]*"}
      - {id: i, type: INT, required: false, min: -5, max: 1000}
      - {id: f, type: FLOAT, required: false}
      - {id: b, type: BOOLEAN, required: false}
      - {id: d, type: DATE, required: false, after: "2000-01-01"}
      - {id: dt, type: DATETIME, required: false}
      - {id: t, type: TIME, required: false}
      - {id: du, type: DURATION, required: false, max: P7D}
      - {id: sel, type: SELECT, values: [low, high, 3], required: false}
      - {id: en, type: ENUM, values: [a, b], allowCustomValue: true, required: false}
      - {id: ms, type: MULTISELECT, values: [x, y, z], required: false}
      - {id: j, type: JSON, required: false}
      - {id: y, type: YAML, required: false}
      - {id: u, type: URI, required: false}
      - {id: e, type: EMAIL, required: false}
      - {id: arr, type: ARRAY, itemType: INT, required: false}
      - {id: when, type: ARRAY, itemType: DATETIME, required: false}
      - {id: req, type: BOOLEAN}
  - id: after
    type: return
    format: done
"""
TYPED_IDS = (
    "s",
    "i",
    "f",
    "b",
    "d",
    "dt",
    "t",
    "du",
    "sel",
    "en",
    "ms",
    "j",
    "y",
    "u",
    "e",
    "arr",
    "when",
    "req",
)
PLAUSIBLE = (
    "true",
    "no",
    "1",
    "-5",
    "1001",
    "3",
    "1e400",
    "nan",
    "2024-02-29",
    "2024-02-30",
    "1999-12-31",
    "2042-07-01T09:30:00Z",
    "2042-07-01T09:30:00+14:00",
    "24:00",
    "09:30",
    "PT5M",
    "P8D",
    "P400000D",
    "low",
    "x,y",
    '["x", "q"]',
    "[1, 2",
    '{"a": [1]}',
    "a: [1, 2]",
    "&a [*a]",
    "https://example.com/p",
    "http://[::1",
    "a@b.co",
    "not an email",
    "",
)
EDGES = (
    10**400,
    -(10**400),
    2**63,
    1e308,
    -0.0,
    float("inf"),
    float("nan"),
    "NaN",
    "-Infinity",
    "1" * 500,
    json.loads(nested(300)),
    {"a": json.loads(nested(101))},
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(PLAUSIBLE)
    | st.sampled_from(EDGES),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


def iso_datetime(moment: datetime) -> str:
    return moment.isoformat() + "Z"


# A value each input takes (most requests are mostly right: the interesting 422s are the
# ones with a single wrong field, and the 202s must happen too).
FITTING: dict[str, st.SearchStrategy[Any]] = {
    "s": st.text(alphabet="abc ", max_size=5),
    "i": st.integers(-5, 1000) | st.integers(-5, 1000).map(str),
    "f": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**80), 2**80),
    "b": st.booleans() | st.sampled_from(("true", "no", "1", "off")),
    "d": st.dates(min_value=date(2000, 1, 2)).map(date.isoformat),
    "dt": st.datetimes().map(iso_datetime) | st.datetimes().map(datetime.isoformat),
    "t": st.times().map(lambda moment: moment.isoformat()),
    "du": st.sampled_from(("PT5M", "P1D", "PT0.5S", "P7D", "P1W")),
    "sel": st.sampled_from(("low", "high", 3, "3")),
    "en": st.sampled_from(("a", "b")) | st.text(max_size=4) | st.floats(),
    "ms": st.lists(st.sampled_from(("x", "y", "z")), max_size=3) | st.just("x, z"),
    "j": json_values,
    "y": st.sampled_from(("a: 1", "[1, 2]", "x", "{b: [c]}")) | json_values,
    "u": st.sampled_from(("https://example.com/p?q=1", "mailto:a@b.co", "urn:x:y")),
    "e": st.sampled_from(("a@b.co", " first.last@example.org ")),
    "arr": st.lists(st.integers() | st.just("7"), max_size=3) | st.just("1, 2"),
    "when": st.lists(st.datetimes().map(iso_datetime), max_size=2),
    "req": st.booleans(),
}
WRONG = st.sampled_from(EDGES) | st.sampled_from(PLAUSIBLE) | json_values


@st.composite
def resume_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """Fitting values for some inputs, then zero to two of them spoilt, or an unknown name."""
    chosen = draw(st.lists(st.sampled_from(TYPED_IDS), unique=True, max_size=len(TYPED_IDS)))
    inputs = {input_id: draw(FITTING[input_id]) for input_id in chosen}
    if draw(st.integers(0, 9)):
        inputs["req"] = draw(FITTING["req"])
    for _ in range(draw(st.sampled_from((0, 0, 1, 1, 2)))):
        name = draw(st.sampled_from(TYPED_IDS) | st.text(max_size=4))
        inputs[name] = draw(WRONG)
    return inputs


class Resumer:
    """Resumes of the ``typed`` flow's Pause task: the dry run, then the real one, checked."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.paused: str | None = None
        self.outcomes: dict[int, int] = {}

    async def execution(self) -> str:
        if self.paused is None:
            execution_id = await start(self.http, "typed")
            await wait_state(self.http, execution_id, "PAUSED")
            self.paused = execution_id
        return self.paused

    async def attempt(self, inputs: dict[str, Any], *, dry_run_only: bool = False) -> int:
        """The dry run's status; a 422 must name the fields and leave the pause point open."""
        execution_id = await self.execution()
        # NaN and infinities are not JSON, but Python's parser (so the server's) takes them.
        body = json.dumps({"inputs": inputs}).encode()
        where = f"/api/v1/executions/{execution_id}"
        dry = await self.http.post(f"{where}/resume/validate", content=body, headers=JSON)
        assert dry.status_code in (200, 422), f"{dry.status_code} {dry.text[:300]}"
        self.outcomes[dry.status_code] = self.outcomes.get(dry.status_code, 0) + 1
        if dry.status_code == 422:
            errors = assert_names_field(dry, "body", "inputs")
            named = [str(e["loc"][2]) for e in errors if len(e["loc"]) == 3]
            assert len(named) == len(errors), f"an error that names no input: {errors}"
            assert set(named) <= {*TYPED_IDS, *map(str, inputs)}, errors
        if dry.status_code == 200:
            announced = dry.json()["inputs"]
            # (JSON and YAML text may well say null: "" is an empty YAML document.)
            lost = [
                k
                for k, v in inputs.items()
                if v is not None
                and announced.get(k) is None
                and not (k in ("j", "y") and isinstance(v, str))
            ]
            assert not lost, f"given values came back as null: {lost} in {announced}"
        if dry_run_only:
            return dry.status_code
        real = await self.http.post(f"{where}/resume", content=body, headers=JSON)
        if dry.status_code == 422:
            assert real.status_code == 422, f"the dry run refused; the resume: {real.text}"
            assert real.json()["detail"] == dry.json()["detail"]
            state = await wait_state(self.http, execution_id, "PAUSED")
            assert [p["id"] for p in state["pause_points"]] == ["p-t1"], state
            return 422
        assert real.status_code == 202, f"the dry run accepted; the resume: {real.text}"
        self.paused = None
        await wait_state(self.http, execution_id, "COMPLETED")
        view = (await self.http.get(where)).json()
        ask = next(r for r in view["task_runs"] if r["task_id"] == "ask")
        recorded = ask["outputs"]["onResume"]
        assert recorded == dry.json()["inputs"], "the resume recorded other values than announced"
        return 200


async def test_every_input_type_refuses_edge_values_naming_the_field(
    server: RunningServer,
) -> None:
    await server.engine.as_org("acme").put_flow(TYPED_FLOW)
    async with server.client("acme", "operator") as http:
        resumer = Resumer(http)
        for input_id in TYPED_IDS:
            for value in (*EDGES, *PLAUSIBLE):
                await resumer.attempt({"req": True, input_id: value}, dry_run_only=True)
        # The worst of them through the real resume as well.
        for value in EDGES:
            await resumer.attempt({"req": True, "f": value, "en": value, "j": value})
    await assert_healthy(server)


async def test_fuzzed_resume_inputs_get_202_or_a_422_naming_the_field(
    server: RunningServer,
) -> None:
    await server.engine.as_org("acme").put_flow(TYPED_FLOW)
    loop = asyncio.get_running_loop()
    async with server.client("acme", "operator") as http:
        resumer = Resumer(http)

        @fuzz_settings()
        @given(inputs=resume_inputs())
        def explore(inputs: dict[str, Any]) -> None:
            asyncio.run_coroutine_threadsafe(resumer.attempt(inputs), loop).result(timeout=30)

        await asyncio.to_thread(explore)
    # Both outcomes must have been explored, or the test proves little.
    assert resumer.outcomes.get(200, 0) >= EXAMPLES // 10, resumer.outcomes
    assert resumer.outcomes.get(422, 0) >= EXAMPLES // 10, resumer.outcomes
    await assert_healthy(server)


# -- things that must never run -------------------------------------------------------------------


async def test_shell_tasks_never_run_unless_the_server_enables_them(
    server: RunningServer, tmp_path: Path
) -> None:
    marker = tmp_path / "shell-ran"
    flow = f"""
id: sneaky
namespace: api.hostile
tasks:
  - id: run
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - touch {marker}
"""
    async with server.client("acme", "admin") as http:
        stored = await http.put("/api/v1/flows/api.hostile/sneaky", content=flow, headers=YAML)
        assert stored.status_code == 201, stored.text
        execution_id = await start(http, "sneaky")
        await wait_state(http, execution_id, "FAILED")
        view = (await http.get(f"/api/v1/executions/{execution_id}")).json()
        run = view["task_runs"][0]
        assert run["state"] == "FAILED", run
        assert "shell tasks are disabled" in run["error"], run
        events = (await http.get(f"/api/v1/executions/{execution_id}/events")).json()["items"]
        failed = [e for e in events if e["type"] == "task.failed"]
        assert len(failed) == 1 and "shell tasks are disabled" in failed[0]["data"]["error"]
        assert not [e for e in events if e["type"] == "task.log"], "the command produced output"
    assert not marker.exists(), "a shell command ran on a server that does not enable them"


ESCAPES = (
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ joiner.__init__.__globals__.os.popen('touch MARKER') }}",
    "{{ inputs | attr('__class__') }}",
    "{{ '{0.__class__.__mro__}'.format(inputs) }}",
    "{{ namespace.__init__.__globals__ }}",
)


async def test_template_sandbox_escapes_submitted_over_http_never_run(
    server: RunningServer, tmp_path: Path
) -> None:
    marker = tmp_path / "escaped"
    steps = "\n".join(
        f"  - id: t{n}\n    type: return\n    allowFailure: true\n"
        f"    format: {json.dumps(template.replace('MARKER', str(marker)))}"
        for n, template in enumerate(ESCAPES)
    )
    flow = f"id: escapes\nnamespace: api.hostile\ntasks:\n{steps}\n"
    async with server.client("acme", "admin") as http:
        stored = await http.put("/api/v1/flows/api.hostile/escapes", content=flow, headers=YAML)
        assert stored.status_code == 201, stored.text
        execution_id = await start(http, "escapes")
        final = await wait_state(http, execution_id, *TERMINAL)
        view = (await http.get(f"/api/v1/executions/{execution_id}")).json()
        runs = {r["task_id"]: r for r in view["task_runs"]}
        assert sorted(runs) == sorted(f"t{n}" for n in range(len(ESCAPES))), final
        for n, template in enumerate(ESCAPES):
            run = runs[f"t{n}"]
            assert run["state"] in ("FAILED", "WARNING"), (template, run)
            assert run["outputs"] in (None, {}), (template, run)
            assert f"task 't{n}'" in run["error"] and "unsafe" in run["error"], (template, run)
        everything = (
            json.dumps(view) + (await http.get(f"/api/v1/executions/{execution_id}/events")).text
        )
        for leak in ("<class", "<module", "<function", "__builtins__", "subprocess"):
            assert leak not in everything, f"{leak!r} reached the API"
    assert not marker.exists()


# -- SSE clients that never read ------------------------------------------------------------------

WINDOW = 50  # StreamTiming.max_buffered: the live window of one execution's channel
WINDOW_BYTES = 2**20  # StreamTiming.window_bytes: what a channel keeps for slow followers
ITERATIONS = 400
BLOB = 20_000  # bytes each task.completed event carries
CHATTY = f"""
id: chatty
namespace: api.hostile
inputs:
  - id: blob
    type: STRING
tasks:
  - id: hold
    type: pause
  - id: many
    type: foreach
    values: {list(range(ITERATIONS))}
    tasks:
      - id: echo
        type: return
        format: "{{{{ inputs.blob }}}}"
"""


@dataclass
class SseServer:
    base_url: str
    server: uvicorn.Server
    engine: Engine
    key: str

    def buffered(self) -> list[int]:
        """Bytes waiting in the server's send buffer, per open connection."""
        return [
            p.transport.get_write_buffer_size()
            for p in self.server.server_state.connections
            if getattr(p, "transport", None) is not None
        ]


@contextlib.asynccontextmanager
async def sse_server(db_path: Path) -> AsyncIterator[SseServer]:
    engine = Engine(fast_settings(db_path), serve=True)
    await engine.start()
    app = create_app(engine)
    app.state.sse_timing = StreamTiming(max_buffered=WINDOW, window_bytes=WINDOW_BYTES)
    try:
        async with serving(app) as (base_url, server):
            org = engine.as_org("acme")
            key, _ = await org.create_api_key("admin", "sse")
            await org.put_flow(CHATTY)
            yield SseServer(base_url, server, engine, key)
    finally:
        await engine.stop()


@contextlib.contextmanager
def stuck_readers(base_url: str, key: str, paths: list[str]) -> Iterator[list[socket.socket]]:
    """Sockets that ask for an SSE stream and never read a byte of it (tiny receive buffers)."""
    host, port = base_url.removeprefix("http://").split(":")
    sockets = []
    try:
        for path in paths:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                f"X-API-Key: {key}\r\n\r\n".encode()
            )
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            # Reset rather than close politely: the server learns at once that they are gone.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


def followers(running: SseServer, execution_id: str) -> int:
    channel = sse.channel_of(running.engine.feed, execution_id)
    return channel.followers if channel is not None else 0


async def paused_chatty(http: httpx.AsyncClient) -> str:
    execution_id = await start(http, "chatty", {"blob": "b" * BLOB})
    await wait_state(http, execution_id, "PAUSED")
    return execution_id


async def resume_and_time(http: httpx.AsyncClient, execution_id: str) -> float:
    """Seconds from the resume until the execution completed (its 2 x 400 task events)."""
    began = time.monotonic()
    reply = await http.post(f"/api/v1/executions/{execution_id}/resume", json={})
    assert reply.status_code == 202, reply.text
    final = await wait_state(http, execution_id, *TERMINAL)
    assert final["state"] == "COMPLETED", final
    return time.monotonic() - began


async def followed_by_a_reader(running: SseServer, http: httpx.AsyncClient) -> float:
    """The baseline: the time of a run followed by a client that reads everything."""
    execution_id = await paused_chatty(http)
    path = f"/api/v1/executions/{execution_id}/events"

    async def read_all() -> int:
        received = 0
        async with http.stream("GET", path, headers={"Accept": "text/event-stream"}) as reply:
            async for chunk in reply.aiter_bytes():
                received += len(chunk)
        return received

    reader = asyncio.create_task(read_all())
    await assert_eventually(lambda: followers(running, execution_id) == 1)
    took = await resume_and_time(http, execution_id)
    assert await asyncio.wait_for(reader, 10) > ITERATIONS * BLOB
    return took


def stream_paths(execution_id: str, count: int) -> list[str]:
    """``count`` streams of the execution, and a quarter as many of the organization feed."""
    return [f"/api/v1/executions/{execution_id}/events"] * count + ["/api/v1/events"] * (count // 4)


async def test_sse_clients_that_never_read_stay_within_the_window_and_are_dropped_when_gone(
    tmp_path: Path,
) -> None:
    async with (
        sse_server(tmp_path / "sse.db") as running,
        httpx.AsyncClient(
            base_url=running.base_url, headers={"X-API-Key": running.key}, timeout=30
        ) as http,
    ):
        baseline = await followed_by_a_reader(running, http)
        connections = len(running.server.server_state.connections)
        execution_id = await paused_chatty(http)
        with stuck_readers(running.base_url, running.key, stream_paths(execution_id, 8)):
            await assert_eventually(lambda: followers(running, execution_id) == 8)
            took = await resume_and_time(http, execution_id)
            # Loose: the engine is not held up (the tight bound is in the xfail test below).
            assert took < 4 * baseline + 2, f"{took:.2f}s; with one reader {baseline:.2f}s"

            channel = sse.channel_of(running.engine.feed, execution_id)
            assert channel is not None
            assert channel.followers == 8
            # Stuck followers hold the channel's window up to its byte bound, no further.
            assert channel.size <= WINDOW_BYTES + BLOB + 2000, channel.size
            assert channel.size == sum(map(len, channel.blocks)), "frames' sizes are tracked"
            feed = running.engine.feed
            inboxes = [s.sink for s in feed.orgs.get("acme", ())]
            # The organization feed ends a stream whose inbox overflowed (reconnect to resume).
            assert all(isinstance(i, sse._Inbox) and len(i.events) <= WINDOW for i in inboxes)
            # Each stuck connection's send buffer holds at most one window of frames.
            buffered = running.buffered()
            assert max(buffered) <= WINDOW_BYTES + BLOB + 2000, buffered
            assert sum(buffered) < 10 * ITERATIONS * BLOB / 4, buffered

        async def dropped() -> bool:
            gone = sse.channel_of(running.engine.feed, execution_id) is None
            return gone and not feed.orgs.get("acme")

        await assert_eventually(dropped)
        await assert_eventually(lambda: len(running.server.server_state.connections) <= connections)


STUCK_MANY = 20


async def test_many_readers_that_never_read_cost_the_engine_and_memory_no_more_than_the_window(
    tmp_path: Path,
) -> None:
    async with (
        sse_server(tmp_path / "sse.db") as running,
        httpx.AsyncClient(
            base_url=running.base_url, headers={"X-API-Key": running.key}, timeout=60
        ) as http,
    ):
        baseline = await followed_by_a_reader(running, http)
        execution_id = await paused_chatty(http)
        paths = stream_paths(execution_id, STUCK_MANY)
        with stuck_readers(running.base_url, running.key, paths):
            await assert_eventually(lambda: followers(running, execution_id) == STUCK_MANY)
            took = await resume_and_time(http, execution_id)

        # Memory: what stuck streams keep alive once the execution is done, traced exactly.
        execution_id = await paused_chatty(http)
        paths = stream_paths(execution_id, STUCK_MANY)
        gc.collect()
        tracemalloc.start()
        try:
            with stuck_readers(running.base_url, running.key, paths):
                await assert_eventually(lambda: followers(running, execution_id) == STUCK_MANY)
                held_before, _ = tracemalloc.get_traced_memory()
                await resume_and_time(http, execution_id)
                # Nothing announces "every stuck stream has blocked on its window": give them
                # time to push what they can, then measure (more time only makes it fairer).
                await asyncio.sleep(0.5)
                gc.collect()
                held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    window = WINDOW_BYTES + BLOB + 2000
    allowance = window + len(paths) * 256 * 1024 + 8 * 2**20
    problems = []
    if took > 1.5 * baseline + 0.3:
        problems.append(
            f"{len(paths)} readers that never read made the run take {took:.2f}s, "
            f"one that reads {baseline:.2f}s"
        )
    if held - held_before > allowance:
        problems.append(
            f"{len(paths)} stuck streams keep {(held - held_before) / 2**20:.0f} MiB alive "
            f"(allowed: one window, {window / 2**20:.1f} MiB, and 256 KiB per stream)"
        )
    assert not problems, (
        f"{'; '.join(problems)} (run: {took:.2f}s, with one reader {baseline:.2f}s)"
    )


async def test_a_trailing_slash_is_a_404_for_writes_and_a_redirect_for_reads(
    server: RunningServer,
) -> None:
    """A POST to a path with a trailing "/" is never redirected onto another route (where
    it would be a 405 of a GET route): it is a 404 saying why; a GET is sent on."""
    async with server.client("acme", "operator") as http:
        reply = await http.post("/api/v1/main/executions/api.tests/", json={})
        assert reply.status_code == 404, reply.text
        assert "paths end without '/'" in reply.json()["detail"]
        reply = await http.get("/api/v1/flows/", follow_redirects=False)
        assert reply.status_code == 307
        assert reply.headers["location"] == "/api/v1/flows"
        assert (await http.get("/api/v1/flows/", follow_redirects=True)).status_code == 200
