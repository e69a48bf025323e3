"""What a flow may run is the operator's decision: the allow-lists of python modules,
shell organizations and HTTP hosts, through ``run_leaf`` as a runtime calls it.

Real modules written to a directory in ``python_paths``, real HTTP servers on
loopback; each refusal is asserted by the setting it names.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse

from pausepoint.config import Settings
from pausepoint.errors import FlowError, TaskError
from pausepoint.flow import load_flow
from pausepoint.tasks.context import LeafContext
from pausepoint.tasks.policy import NEVER_IMPLIED, allowed_modules, check_flow_functions
from pausepoint.tasks.registry import run_leaf
from tests.api.conftest import serving

pytestmark = pytest.mark.integration

SETTING = "python_modules setting (PAUSEPOINT_PYTHON_MODULES)"


class OrgControl:
    """The one part of the runtime's task control these tasks ask: the organization."""

    def __init__(self, org: str) -> None:
        self.org = org

    async def organization(self, caller: LeafContext) -> str:
        return self.org


def context(org: str | None = None, **settings: Any) -> LeafContext:
    settings.setdefault("python_modules", ())
    return LeafContext(
        execution_id="exec-policy",
        task_run_id="exec-policy/run-1",
        attempt=1,
        settings=Settings(db="sqlite://", **settings),
        log=lambda level, message: None,
        control=OrgControl(org) if org is not None else None,  # type: ignore[arg-type]
    )


@pytest.fixture
def helpers(tmp_path: Path) -> tuple[str, str]:
    """A directory in python_paths with an operator's module that imports dangerous things."""
    name = f"ops_helpers_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import os\n"
        "import json\n"
        "from pathlib import Path\n"
        "from subprocess import run\n"
        "from builtins import eval as evaluate\n"
        "from json import dumps\n"
        "\n"
        "def total(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "\n"
        "class Tools:\n"
        "    @staticmethod\n"
        "    def double(x: int) -> int:\n"
        "        return 2 * x\n"
    )
    (tmp_path / "subprocess.py").write_text("def run():\n    return 'shadow'\n")
    return str(tmp_path), name


async def python(reference: str, ctx: LeafContext, **kwargs: Any) -> dict[str, Any]:
    return await run_leaf("python", {"function": reference, "kwargs": kwargs}, ctx)


async def test_modules_found_under_python_paths_are_allowed_and_nothing_else(
    helpers: tuple[str, str],
) -> None:
    path, name = helpers
    ctx = context(python_paths=(path,))
    assert await python(f"{name}:total", ctx, a=2, b=3) == {"value": 5}
    assert await python(f"{name}:Tools.double", ctx, x=21) == {"value": 42}
    # A module named as a dangerous standard module is never allowed implicitly.
    assert "subprocess" in NEVER_IMPLIED
    assert name in allowed_modules(ctx.settings)
    assert "subprocess" not in allowed_modules(ctx.settings)
    for reference in (
        "os:system",
        "subprocess:run",
        "builtins:eval",
        "builtins:exec",
        "builtins:open",
        "importlib:import_module",
        "shutil:copy",
        "pathlib:Path.read_text",
        "pickle:loads",
        "runpy:run_path",
        "ctypes:CDLL",
        "json:dumps",
    ):
        module = reference.partition(":")[0]
        with pytest.raises(TaskError) as refused:
            await python(reference, ctx, command="id")
        assert f"module '{module}' is not in the {SETTING}" in str(refused.value), reference


async def test_an_allowed_module_cannot_hand_out_what_it_imported(
    helpers: tuple[str, str],
) -> None:
    path, name = helpers
    ctx = context(python_paths=(path,))
    refusals = {
        f"{name}:os.system": "it reaches module 'os'",
        f"{name}:Path.read_text": "it is defined in module 'pathlib'",
        f"{name}:run": "it is defined in module 'subprocess'",
        f"{name}:evaluate": "it is defined in module 'builtins'",
        f"{name}:__builtins__": "'__builtins__' is not a public attribute",
        f"{name}:total.__globals__": "'__globals__' is not a public attribute",
    }
    for reference, why in refusals.items():
        with pytest.raises(TaskError) as refused:
            await python(reference, ctx)
        assert why in str(refused.value), reference
    # A harmless standard function re-exported is still that module's: not allowed unnamed,
    # but not refused as dangerous either (json is nothing a flow could escape with).
    assert await python(f"{name}:dumps", ctx, obj=[1]) == {"value": "[1]"}


async def test_relative_and_malformed_references_are_refused() -> None:
    ctx = context(python_modules=("json",))
    for reference in (".json:dumps", "json..x:dumps", "json:", ":dumps", "json:dumps..x"):
        with pytest.raises(TaskError) as refused:
            await python(reference, ctx)
        assert "python task" in str(refused.value), reference


async def test_a_dangerous_module_runs_only_when_the_operator_names_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    named = context(python_modules=("os",))
    assert await python("os:getpid", named) != {}
    with pytest.raises(TaskError, match="module 'os' is not in the"):
        await python("os:path.basename", context(python_modules=("json",)), p="x/y")
    # Named: os brings its C implementation (posix.system) and os.path with it.
    assert await python("os:path.basename", named, p="x/y") == {"value": "y"}
    assert await python("os:system", named, command=f"touch {marker}") == {"value": 0}
    assert marker.exists()


def test_a_flow_naming_a_refused_function_is_refused_when_saved() -> None:
    flow = load_flow(
        """
id: escape
namespace: policy.tests
tasks:
  - id: fine
    type: python
    function: json:dumps
  - id: shell_out
    type: python
    function: os:system
  - id: helper
    type: agent
    provider: {baseUrl: "http://model.invalid/v1", model: m}
    prompt: hi
    tools:
      - name: run
        python: subprocess:run
"""
    )
    with pytest.raises(FlowError) as refused:
        check_flow_functions(flow, Settings(db="sqlite://", python_modules=("json",)), "f.yaml")
    where = {error.loc for error in refused.value.errors}
    assert where == {("tasks", 1, "function"), ("tasks", 2, "tools", 0, "function")}
    assert all(SETTING in error.msg for error in refused.value.errors)
    check_flow_functions(
        flow, Settings(db="sqlite://", python_modules=("json", "os", "subprocess"))
    )


async def test_shell_runs_only_in_the_organizations_the_operator_names() -> None:
    spec = {"commands": ["echo hi"]}
    with pytest.raises(TaskError, match="PAUSEPOINT_SHELL_ENABLED=true"):
        await run_leaf("shell", spec, context("acme"))
    settings = {"shell_organizations": ("globex",)}
    with pytest.raises(TaskError) as refused:
        await run_leaf("shell", spec, context("acme", **settings))
    assert "disabled in organization 'acme'" in str(refused.value)
    assert "shell_organizations setting (PAUSEPOINT_SHELL_ORGANIZATIONS)" in str(refused.value)
    ran = await run_leaf("shell", spec, context("globex", **settings))
    assert ran["stdout"] == "hi\n"
    everywhere = await run_leaf("shell", spec, context("acme", shell_enabled=True))
    assert everywhere["exitCode"] == 0


@pytest.fixture
async def loopback() -> AsyncIterator[Callable[[str], str]]:
    """A loopback HTTP server: ``/data`` answers, ``/hop`` redirects to ``localhost``."""
    app = FastAPI()
    port: list[int] = []

    @app.get("/data")
    async def data() -> JSONResponse:
        return JSONResponse({"secret": "server-side"})

    @app.get("/hop")
    async def hop() -> RedirectResponse:
        return RedirectResponse(f"http://localhost:{port[0]}/data")

    async with serving(app) as (base_url, _):
        port.append(int(base_url.rsplit(":", 1)[1]))
        yield lambda path: f"{base_url}{path}"


async def test_http_hosts_are_limited_per_organization(loopback: Callable[[str], str]) -> None:
    hosts = {"http_allowed_hosts": {"acme": ("127.0.0.1",), "*": ("*.example.com",)}}
    reached = await run_leaf("http", {"uri": loopback("/data")}, context("acme", **hosts))
    assert reached["body"] == {"secret": "server-side"}
    with pytest.raises(TaskError) as refused:
        await run_leaf("http", {"uri": loopback("/data")}, context("globex", **hosts))
    assert "host '127.0.0.1' is not allowed for organization 'globex'" in str(refused.value)
    assert "http_allowed_hosts setting (PAUSEPOINT_HTTP_ALLOWED_HOSTS)" in str(refused.value)
    # A redirect to a host the organization may not reach is refused too.
    with pytest.raises(TaskError, match="host 'localhost' is not allowed"):
        await run_leaf("http", {"uri": loopback("/hop")}, context("acme", **hosts))


async def test_private_addresses_are_refused_on_what_names_resolve_to(
    loopback: Callable[[str], str],
) -> None:
    private = {"http_refuse_private": True}
    port = loopback("").rsplit(":", 1)[1]
    for uri in (
        loopback("/data"),
        f"http://localhost:{port}/data",
        f"http://[::1]:{port}/data",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://0.0.0.0/",
    ):
        with pytest.raises(TaskError) as refused:
            await asyncio.wait_for(run_leaf("http", {"uri": uri}, context(None, **private)), 30)
        assert "refused by the http_refuse_private setting" in str(refused.value), uri
    # Named exactly by the operator, a private host is reachable; a redirect off it is not.
    named = {**private, "http_allowed_hosts": {"acme": ("127.0.0.1", "*.example.com")}}
    reached = await run_leaf("http", {"uri": loopback("/data")}, context("acme", **named))
    assert reached["code"] == 200
    with pytest.raises(TaskError, match="host 'localhost' is not allowed"):
        await run_leaf("http", {"uri": loopback("/hop")}, context("acme", **named))
    # A wildcard is no exact name: what it matches is still checked where it resolves.
    wildcard = {**private, "http_allowed_hosts": {"acme": ("*",)}}
    with pytest.raises(TaskError, match=r"host '127\.0\.0\.1' resolves to 127\.0\.0\.1"):
        await run_leaf("http", {"uri": loopback("/data")}, context("acme", **wildcard))


async def test_an_agent_provider_obeys_the_host_rules(loopback: Callable[[str], str]) -> None:
    spec = {
        "provider": {"base_url": loopback("/v1"), "model": "m"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    with pytest.raises(TaskError) as refused:
        await run_leaf("agent_llm", spec, context(None, http_refuse_private=True))
    assert "agent: provider" in str(refused.value)
    assert "http_refuse_private setting" in str(refused.value)
    hosts = {"http_allowed_hosts": {"acme": ("api.openai.com",)}}
    with pytest.raises(TaskError, match="http_allowed_hosts setting"):
        await run_leaf("agent_llm", spec, context("acme", **hosts))
    tool = {**spec, "tools": [{"name": "run", "python": "subprocess:run"}]}
    with pytest.raises(TaskError, match="module 'subprocess' is not in the python_modules"):
        await run_leaf("agent_llm", tool, context("acme"))
