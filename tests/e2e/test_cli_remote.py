"""The CLI's remote mode end to end: ``pausepoint --url`` processes against a real server.

The server (uvicorn on a free loopback port, its own SQLite file) runs in the
test's event loop; each CLI command is a subprocess with ``PAUSEPOINT_API_KEY``
in its environment and no access to the server's database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pausepoint import AsyncClient
from tests.api.conftest import RunningServer, free_port, running_server
from tests.e2e.cli_helpers import (
    COMMAND,
    EXECUTION_ID,
    HEAVY_MODULES,
    NOT_USED_BY_A_REMOTE_STATE,
    base_env,
    heavy_modules_in,
    heavy_modules_probe,
)

GREETING = """\
id: greeting
namespace: remote.e2e
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: hello
    type: return
    format: "hello {{ inputs.name }}"
"""

GATE = """\
id: gate
namespace: remote.e2e
tasks:
  - id: approval
    type: pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: after
    type: return
    format: "approved={{ outputs.approval.onResume.approved }} ctx={{ context.messages | length }}"
"""


@dataclass
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"pausepoint {' '.join(self.args)} -> exit {self.code}\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
        )


class RemoteCli:
    """Runs ``pausepoint --url URL ...`` as a subprocess with an API key in the environment."""

    def __init__(self, server: RunningServer, cwd: Path, role: str = "admin") -> None:
        self.url = server.base_url
        self.cwd = cwd
        self.env = base_env(PAUSEPOINT_API_KEY=server.keys[f"acme:{role}"])

    async def __call__(
        self, *args: str, url: str | None = None, env: dict[str, str] | None = None
    ) -> Run:
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            "--url",
            url or self.url,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            await process.communicate()
            raise AssertionError(f"pausepoint {' '.join(args)} did not finish") from None
        assert process.returncode is not None
        return Run(args, process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str) -> Run:
        result = await self(*args)
        assert result.code == 0, str(result)
        assert result.stderr == "", str(result)
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self.ok(*args, "--json")).stdout)


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_path) as running:
        yield running


@pytest.fixture
def cli(server: RunningServer, tmp_path: Path) -> RemoteCli:
    (tmp_path / "greeting.yaml").write_text(GREETING)
    (tmp_path / "gate.yaml").write_text(GATE)
    return RemoteCli(server, tmp_path)


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.base_url, api_key=server.keys["acme:admin"]) as client:
        yield client


def execution_id(run: Run) -> str:
    match = EXECUTION_ID.search(run.stdout)
    assert match, str(run)
    return match.group(0)


async def started_gate(cli: RemoteCli, client: AsyncClient) -> str:
    started = execution_id(await cli.ok("start", "remote.e2e.gate", "-l", "team=ops"))
    await client.wait(started, until="PAUSED", timeout=10)
    return started


async def test_flows_apply_then_ls(cli: RemoteCli, client: AsyncClient) -> None:
    applied = await cli.ok("flows", "apply", "greeting.yaml", "gate.yaml")
    assert "greeting.yaml: flow remote.e2e.greeting revision 1" in applied.stdout
    assert "gate.yaml: flow remote.e2e.gate revision 1" in applied.stdout
    assert (await client.flow("remote.e2e", "gate")).source == GATE

    (cli.cwd / "greeting.yaml").write_text(GREETING.replace("hello {{", "hi {{"))
    again = await cli.ok("flows", "apply", "greeting.yaml")
    assert "revision 2" in again.stdout
    listed = (await cli.ok("flows", "ls")).stdout
    assert "remote.e2e.greeting" in listed and "remote.e2e.gate" in listed
    assert "api.tests.approval" in listed  # loaded by the server fixture


async def test_start_with_inputs_and_wait(cli: RemoteCli, client: AsyncClient) -> None:
    await cli.ok("flows", "apply", "greeting.yaml", "gate.yaml")
    done = await cli.ok("start", "remote.e2e.greeting", "-i", "name=cli", "-l", "k=v", "--wait")
    assert "COMPLETED" in done.stdout
    view = await client.execution(execution_id(done))
    assert view.inputs == {"name": "cli"} and view.labels == {"k": "v"}
    assert view.task_run("hello").outputs == {"value": "hello cli"}

    waiting = await cli.ok("start", "remote.e2e.gate", "--wait")
    assert "PAUSED" in waiting.stdout and "pausepoint resume" in waiting.stdout


async def test_state_show_ls_pause_inject_resume(cli: RemoteCli, client: AsyncClient) -> None:
    await cli.ok("flows", "apply", "gate.yaml")
    gate = await started_gate(cli, client)

    state = await cli.json("state", gate)
    assert state["state"] == "PAUSED" and len(state["pause_points"]) == 1
    task_pause = state["pause_points"][0]["id"]
    assert gate in (await cli.ok("ls", "--namespace", "remote.e2e", "--state", "paused")).stdout
    assert "PAUSED" in (await cli.ok("state", gate)).stdout

    assert "PAUSED" in (await cli.ok("pause", gate, "--reason", "hold")).stdout
    await cli.ok("inject", gate, "ship it carefully", "--role", "system")
    shown = await cli.json("show", gate)
    assert [m["message"] for m in shown["context"]] == ["ship it carefully"]
    manual = next(p["id"] for p in shown["pause_points"] if p["kind"] == "manual")

    ambiguous = await cli("resume", gate, "-i", "approved=true")
    assert ambiguous.code == 1 and ambiguous.stderr.startswith("error:"), str(ambiguous)
    await cli.ok("resume", gate, "-i", "approved=true", "--pause-id", task_pause)
    await cli.ok("resume", gate, "--pause-id", manual)
    view = await client.wait(gate, timeout=10)
    assert view.state == "COMPLETED"
    assert view.task_run("after").outputs == {"value": "approved=True ctx=1"}

    events = (await cli.ok("events", gate)).stdout.splitlines()
    assert events[-1].split()[2] == "workflow.completed"
    followed = await cli.ok("events", gate, "--follow", "--json")
    assert [json.loads(line)["type"] for line in followed.stdout.splitlines()][-1] == (
        "workflow.completed"
    )


async def test_events_follow_prints_live_events_until_the_end(
    cli: RemoteCli, client: AsyncClient
) -> None:
    await cli.ok("flows", "apply", "gate.yaml")
    gate = await started_gate(cli, client)
    following = asyncio.create_task(cli("events", gate, "--follow"))
    await asyncio.sleep(0)  # the follower may start before or after the resume: both work
    await client.resume(gate, {"approved": False})
    result = await following
    assert result.code == 0, str(result)
    types = [line.split()[2] for line in result.stdout.splitlines()]
    assert types[0] == "workflow.started" and types[-1] == "workflow.completed"
    assert len(types) == len(await client.events(gate))


async def test_cancel_and_terminate(cli: RemoteCli, client: AsyncClient) -> None:
    await cli.ok("flows", "apply", "gate.yaml")
    first, second = [await started_gate(cli, client) for _ in range(2)]
    await cli.ok("cancel", first, "--reason", "not needed")
    assert (await client.wait(first, timeout=10)).state == "CANCELLED"
    terminated = await cli.ok("terminate", second, "--reason", "stop now")
    assert "TERMINATED" in terminated.stdout
    audit = await client.audit(second)
    assert [(c.kind, c.reason) for c in audit] == [("terminate", "stop now")]


def one_line_error(run: Run) -> str:
    assert "Traceback" not in run.stderr, str(run)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), str(run)
    return lines[0]


async def test_errors_are_one_line_with_the_local_exit_codes(
    cli: RemoteCli, server: RunningServer, client: AsyncClient
) -> None:
    await cli.ok("flows", "apply", "gate.yaml")
    gate = await started_gate(cli, client)
    bad_key, viewer, unknown, conflict, unreachable, bad_input = await asyncio.gather(
        cli("state", gate, env={"PAUSEPOINT_API_KEY": "pp_forged_key"}),
        cli("pause", gate, env={"PAUSEPOINT_API_KEY": server.keys["acme:viewer"]}),
        cli("state", "0" * 24),
        cli("resume", gate),
        cli("state", gate, url=f"http://127.0.0.1:{free_port()}"),
        cli("resume", gate, "-i", "approved=maybe"),
    )
    for run in (bad_key, viewer, unknown, conflict, unreachable, bad_input):
        assert run.code == 1, str(run)
    assert "API key" in one_line_error(bad_key) or "credentials" in one_line_error(bad_key)
    assert "operator" in one_line_error(viewer)
    assert "not found" in one_line_error(unknown)
    one_line_error(conflict)
    assert "cannot reach" in one_line_error(unreachable)
    assert "approved" in one_line_error(bad_input)

    usage, bad_url = await asyncio.gather(
        cli("resume", gate, "-i", "no-equals-sign"), cli("state", gate, url="localhost:1")
    )
    assert usage.code == 2 and "key=value" in one_line_error(usage)
    assert bad_url.code == 2 and "http://" in one_line_error(bad_url)
    assert (await client.state(gate)).state == "PAUSED"


async def test_the_url_can_come_from_the_environment(
    cli: RemoteCli, server: RunningServer, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "flows",
        "ls",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=elsewhere,
        env={**cli.env, "PAUSEPOINT_URL": server.base_url},
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert "api.tests.approval" in out.decode()
    assert list(elsewhere.iterdir()) == []  # no local database was opened


async def test_a_remote_state_loads_neither_the_server_nor_the_database_layer(
    cli: RemoteCli, client: AsyncClient
) -> None:
    await client.apply_flow(GATE)
    started = await client.start("remote.e2e", "gate")
    probe = await asyncio.create_subprocess_exec(
        *heavy_modules_probe(
            "--url",
            cli.url,
            "state",
            started.id,
            modules=(*HEAVY_MODULES, *NOT_USED_BY_A_REMOTE_STATE),
        ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cli.cwd,
        env=cli.env,
    )
    out, err = await asyncio.wait_for(probe.communicate(), 30)

    assert started.id in out.decode(), err.decode()
    assert heavy_modules_in(err.decode()) == []
