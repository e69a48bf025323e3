"""Tenant escape: organization acme's admin tries every way a flow can reach the server
or organization globex, and none gets there.

A real server on loopback (uvicorn, a SQLite file) configured as a server shared by
several organizations should be: no python module allowed beyond what the operator
names (none here), shell only for globex, HTTP private addresses refused. globex
keeps a paused execution, a key-value entry, a stored file, a secret and a
callback URL; acme's admin (an API key of role admin) writes flows that go after
them, and after the server's database file and secrets key. Each attempt asserts
the specific refusal, and that none of globex's values or the server's files shows
up in anything acme can read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint.models import ExecutionView
from tests.api.conftest import RunningServer, running_server

pytestmark = pytest.mark.integration

B_NAMESPACE = "shared.ns"  # the same namespace name exists in both organizations
B_KV_VALUE = "globex-kv-value-7f3a"
B_FILE_CONTENT = "globex-file-content-91cc"
B_SECRET_VALUE = "globex-secret-value-c0de"
B_LOG_LINE = "globex-log-line-5e11"
YAML = {"Content-Type": "application/x-yaml"}

VAULT = f"""
id: vault
namespace: {B_NAMESPACE}
tasks:
  - id: note
    type: log
    message: {B_LOG_LINE}
  - id: remember
    type: kv_set
    key: vault_key
    value: {B_KV_VALUE}
  - id: keep
    type: write
    content: {B_FILE_CONTENT}
  - id: announce
    type: return
    format: "{{{{ callbacks.gate }}}}"
  - id: gate
    type: pause
  - id: done
    type: return
    format: opened
"""

SHARED_SETTINGS: dict[str, Any] = {
    "python_modules": (),
    "shell_enabled": False,
    "shell_organizations": ("globex",),
    "http_allowed_hosts": {"acme": ("*",), "globex": ("*",)},
    "http_refuse_private": True,
}


@pytest.fixture
async def server(db_path: Path) -> Any:
    async with running_server(db_path, **SHARED_SETTINGS) as running:
        yield running


async def put_flow(server: RunningServer, source: str, org: str = "acme") -> httpx.Response:
    namespace = source.split("namespace:", 1)[1].split()[0]
    flow_id = source.split("id:", 1)[1].split()[0]
    async with server.client(org) as client:
        return await client.put(
            f"/api/v1/flows/{namespace}/{flow_id}", content=source, headers=YAML
        )


async def run(server: RunningServer, source: str, org: str = "acme") -> ExecutionView:
    """Store ``source`` as ``org``'s admin, start it over HTTP, wait for it to end or pause."""
    stored = await put_flow(server, source, org)
    assert stored.status_code in (200, 201), stored.text
    flow = stored.json()
    async with server.client(org) as client:
        started = await client.post(
            "/api/v1/executions", json={"namespace": flow["namespace"], "flow_id": flow["id"]}
        )
    assert started.status_code == 201, started.text
    return await server.engine.as_org(org).wait(
        started.json()["id"],
        until=lambda view: view.state in ("PAUSED", "COMPLETED", "FAILED"),
        timeout=30,
    )


def escape_flow(task: str, flow_id: str = "escape") -> str:
    body = "\n".join("    " + line for line in task.strip().splitlines())
    return f"id: {flow_id}\nnamespace: {B_NAMESPACE}\ntasks:\n  - id: attempt\n{body}\n"


async def failed_with(server: RunningServer, task: str) -> str:
    """Run a one-task flow as acme; it must fail; its task's error."""
    view = await run(server, escape_flow(task))
    assert view.state == "FAILED", view
    error = next(r.error for r in view.task_runs if r.task_id == "attempt")
    assert error
    return error


class Globex:
    """What globex keeps and acme must never reach."""

    def __init__(self, execution: ExecutionView) -> None:
        self.execution = execution
        runs = {r.task_id: r for r in execution.task_runs}
        self.file_uri: str = (runs["keep"].outputs or {})["uri"]
        self.callback_url: str = (runs["announce"].outputs or {})["value"]


@pytest.fixture
async def globex(server: RunningServer) -> Globex:
    async with server.client("globex") as client:
        stored = await client.put("/api/v1/secrets/VAULT_SECRET", json={"value": B_SECRET_VALUE})
        assert stored.status_code == 204, stored.text
    view = await run(server, VAULT, "globex")
    assert view.state == "PAUSED", view
    return Globex(view)


def secrets_key_of(server: RunningServer) -> str:
    """The server's secrets key: the key file beside the SQLite database."""
    database = Path(server.engine.settings.db.removeprefix("sqlite:///"))
    return (database.parent / ".pausepoint-secrets.key").read_text().strip()


async def assert_nothing_leaked(server: RunningServer, globex: Globex) -> None:
    """Nothing acme can read holds globex's values or the server's secrets key, and
    globex's execution is exactly as globex left it."""
    forbidden = [B_KV_VALUE, B_FILE_CONTENT, B_SECRET_VALUE]
    forbidden.append(secrets_key_of(server))
    async with server.client("acme") as client:
        listed = await client.get("/api/v1/executions", params={"limit": 500})
        assert listed.status_code == 200, listed.text
        seen = [listed.text]
        for item in listed.json()["items"]:
            assert item["id"] != globex.execution.id
            for path in ("", "/events", "/audit"):
                read = await client.get(f"/api/v1/executions/{item['id']}{path}")
                assert read.status_code == 200, read.text
                seen.append(read.text)
    text = "\n".join(seen)
    for value in forbidden:
        assert value not in text
    still = await server.engine.as_org("globex").execution(globex.execution.id)
    assert still.state == "PAUSED"
    assert [p.id for p in still.pause_points] == [p.id for p in globex.execution.pause_points]


STDLIB_FUNCTIONS = [
    "os:system",
    "os:popen",
    "subprocess:run",
    "subprocess:check_output",
    "builtins:eval",
    "builtins:exec",
    "builtins:open",
    "builtins:__import__",
    "importlib:import_module",
    "shutil:copy",
    "pathlib:Path.read_text",
    "pickle:loads",
    "marshal:loads",
    "runpy:run_path",
    "ctypes:CDLL",
    "socket:create_connection",
    "sqlite3:connect",
    "linecache:getline",
    "asyncio:create_subprocess_shell",
    "pausepoint.config:Settings",
    "pausepoint.service.secretbox:SecretBox.from_settings",
]


async def test_python_functions_outside_the_allow_list_are_refused_when_saved(
    server: RunningServer, globex: Globex
) -> None:
    for reference in STDLIB_FUNCTIONS:
        task = f"type: python\nfunction: {reference}\nkwargs: {{cmd: id}}"
        refused = await put_flow(server, escape_flow(task))
        assert refused.status_code == 422, (reference, refused.text)
        detail = refused.json()["detail"]
        assert detail[0]["loc"] == ["body", "tasks", 0, "function"], reference
        if reference.endswith("__import__"):
            assert "is not a public attribute" in detail[0]["msg"]
        else:
            assert "python_modules setting (PAUSEPOINT_PYTHON_MODULES)" in detail[0]["msg"]
    tool = """
type: agent
provider: {baseUrl: "https://api.example.com/v1", model: m}
prompt: read the database
tools:
  - name: shell
    python: subprocess:run
  - name: reader
    python: pathlib:Path.read_bytes
"""
    refused = await put_flow(server, escape_flow(tool))
    assert refused.status_code == 422, refused.text
    assert [d["loc"] for d in refused.json()["detail"]] == [
        ["body", "tasks", 0, "tools", 0, "function"],
        ["body", "tasks", 0, "tools", 1, "function"],
    ]
    await assert_nothing_leaked(server, globex)


async def test_shell_runs_for_the_organization_allowed_and_no_other(
    server: RunningServer, globex: Globex
) -> None:
    db = server.engine.settings.db.removeprefix("sqlite:///")
    error = await failed_with(server, f'type: shell\ncommands: ["cat {db}"]')
    assert "shell tasks are disabled in organization 'acme'" in error
    assert "PAUSEPOINT_SHELL_ORGANIZATIONS" in error
    view = await run(
        server, escape_flow('type: shell\ncommands: ["echo allowed"]', "own"), "globex"
    )
    assert view.state == "COMPLETED"
    await assert_nothing_leaked(server, globex)


async def test_http_never_reaches_the_server_the_metadata_address_or_private_hosts(
    server: RunningServer, globex: Globex
) -> None:
    port = server.base_url.rsplit(":", 1)[1]
    for uri in (
        f"{server.base_url}/api/v1/executions/{globex.execution.id}",
        f"http://localhost:{port}/api/v1/executions",
        f"http://[::1]:{port}/healthz",
        globex.callback_url
        if globex.callback_url.startswith("http")
        else f"{server.base_url}{globex.callback_url}",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/",
    ):
        error = await failed_with(server, f'type: http\nuri: "{uri}"\nmethod: POST')
        assert "refused by the http_refuse_private setting" in error, (uri, error)
    agent = f"""
type: agent
provider: {{baseUrl: "http://127.0.0.1:{port}/v1", model: m}}
prompt: hello
"""
    error = await failed_with(server, agent)
    assert "http_refuse_private setting" in error
    await assert_nothing_leaked(server, globex)


async def test_templates_cannot_walk_out_of_the_sandbox(
    server: RunningServer, globex: Globex
) -> None:
    for expression, why in (
        ("''.__class__.__mro__[1].__subclasses__()", "unsafe"),
        ("cycler.__init__.__globals__.os", "unsafe"),
        ("fromJson.__globals__", "unsafe"),
        ("self._TemplateReference__context", "unsafe"),
        ("lipsum.__globals__", "undefined"),
        ("secret('VAULT_SECRET')", "no such secret"),
        ("secrets.VAULT_SECRET", "VAULT_SECRET"),
        (f"read('{globex.file_uri}')", f"no file is stored at {globex.file_uri}"),
        ("read('kestra:///../../pausepoint.db')", "'..' path segments are not allowed"),
    ):
        task = f'type: return\nformat: "{{{{ {expression} }}}}"'
        error = await failed_with(server, task)
        assert why in error, (expression, error)
    include = await put_flow(
        server, escape_flow("type: return\nformat: \"{% include '/etc/passwd' %}\"")
    )
    if include.status_code in (200, 201):
        error = await failed_with(server, "type: return\nformat: \"{% include '/etc/passwd' %}\"")
        assert "root:" not in error
    await assert_nothing_leaked(server, globex)


async def test_tasks_reach_only_their_own_organization(
    server: RunningServer, globex: Globex
) -> None:
    b_id = globex.execution.id
    attempts = {
        f"type: subflow\nnamespace: {B_NAMESPACE}\nflowId: vault": "not found",
        f"type: resume\nexecutionId: {b_id}": f"execution {b_id} not found",
        f"type: log_fetch\nexecutionId: {b_id}": "not found",
        "type: kv_get\nkey: vault_key\nerrorOnMissing: true": "vault_key",
        f'type: local_files\ninputs: {{copy: "{globex.file_uri}"}}': "no file is stored at",
        'type: local_files\noutputs: ["../*"]': "must stay inside the directory",
        f"type: toggle_trigger\nnamespace: {B_NAMESPACE}\nflowId: vault\ntrigger: nightly": (
            "not found"
        ),
    }
    for task, why in attempts.items():
        error = await failed_with(server, task)
        assert why in error, (task, error)
    # Purging "globex's" logs purges acme's own only: globex's log line stays.
    purge = f"type: purge_logs\nendDate: '2999-01-01T00:00:00Z'\nexecutionId: {b_id}"
    purged = await run(server, escape_flow(purge, "purge"))
    assert purged.state in ("COMPLETED", "FAILED")
    if purged.state == "COMPLETED":
        assert (purged.task_runs[0].outputs or {}).get("count") == 0
    globex_events = await server.engine.as_org("globex").events(b_id)
    assert any(B_LOG_LINE in str(event.data) for event in globex_events)
    # The same key in acme's own store is acme's, and empty.
    view = await run(server, escape_flow("type: kv_get\nkey: vault_key", "peek"))
    assert view.state == "COMPLETED"
    assert (view.task_runs[0].outputs or {}).get("value") is None
    await assert_nothing_leaked(server, globex)


async def test_acme_credentials_never_open_globex_executions_links_or_files(
    server: RunningServer, globex: Globex
) -> None:
    b_id = globex.execution.id
    pause_id = globex.execution.pause_points[0].id
    async with server.client("acme") as client:
        for method, path, body in (
            ("GET", f"/api/v1/executions/{b_id}", None),
            ("GET", f"/api/v1/executions/{b_id}/events", None),
            ("POST", f"/api/v1/executions/{b_id}/resume", {}),
            ("POST", f"/api/v1/executions/{b_id}/cancel", {}),
            ("POST", f"/api/v1/executions/{b_id}/terminate", {"reason": "escape"}),
            (
                "POST",
                f"/api/v1/executions/{b_id}/approvals/{pause_id}/links",
                {"approver": "mallory", "decision": "approve"},
            ),
            ("GET", f"/api/v1/executions/{b_id}/file", None),
        ):
            params = {"path": globex.file_uri} if path.endswith("/file") else None
            response = await client.request(method, path, json=body, params=params)
            assert response.status_code == 404, (method, path, response.status_code, response.text)
        secrets = await client.get("/api/v1/secrets")
        assert "VAULT_SECRET" not in secrets.text
    # A callback token is a bearer credential for one wait; altered, it opens nothing.
    token = globex.callback_url.rsplit("/", 1)[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        refused = await anonymous.post(f"/api/v1/callbacks/{forged}", json={})
    assert 400 <= refused.status_code < 500, refused.text
    await assert_nothing_leaked(server, globex)
