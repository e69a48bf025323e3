"""``pausepoint approve``, ``deny`` and ``inbox`` end to end: real processes, real SQLite files.

Locally the CLI votes as its local user (``cli``, an admin in no group) on the
database; with ``--url`` it votes as the person its API key acts for, here a
key made with ``pausepoint keys create --user alice --group ops`` on the
server's database.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pausepoint import AsyncClient
from tests.api.conftest import RunningServer, running_server
from tests.e2e.cli_helpers import COMMAND, EXECUTION_ID, Cli, Result, base_env
from tests.e2e.test_cli import assert_one_error_line
from tests.e2e.test_cli_remote import RemoteCli, Run, one_line_error

NS = "approvals.e2e"


def release_flow(approvers: str) -> str:
    """An approval that needs a comment to deny, decided by ``approvers``."""
    return f"""\
id: release
namespace: {NS}
inputs:
  - id: version
    type: STRING
    defaults: "1.0"
tasks:
  - id: sign_off
    type: approval
    title: "Ship {{{{ inputs.version }}}}?"
    commentRequired: ON_DENY
    approvers: {approvers}
    inputs:
      - id: ticket
        type: STRING
        required: false
    onApprove:
      - id: shipped
        type: return
        format: "shipped {{{{ inputs.version }}}}"
"""


# The local user is in no group: the admin role lets it decide here.
LOCAL_RELEASE = release_flow("{groups: [ops], roles: [admin]}")
OPS_RELEASE = release_flow("{groups: [ops]}")


def started(cli: Cli, *inputs: str) -> str:
    """Start the release flow and wait until it waits for a decision; its execution id."""
    result = cli("start", f"{NS}.release", *inputs, "--wait")
    assert result.code == 0 and "PAUSED" in result.stdout, str(result)
    match = EXECUTION_ID.search(result.stdout)
    assert match, str(result)
    assert f"waiting for approval: `pausepoint approve {match.group(0)}`" in result.stdout
    return match.group(0)


def inbox_line(result: Result | Run, execution_id: str) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith(execution_id)]
    assert len(lines) == 1, str(result)
    return lines[0]


# -- locally, on a database file ---------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "approvals.db", tmp_path)
    (tmp_path / "release.yaml").write_text(LOCAL_RELEASE)
    applied = cli("flows", "apply", "release.yaml")
    assert applied.code == 0, str(applied)
    return cli


def test_approve_on_a_local_database_lets_the_flow_go_on(local: Cli) -> None:
    execution = started(local, "-i", "version=2.0")
    listed = local("inbox")
    assert listed.code == 0, str(listed)
    line = inbox_line(listed, execution)
    assert f'{NS}.release  task sign_off  "Ship 2.0?"  waiting ' in line
    assert line.endswith("approvals 0/1  you may approve or deny")

    voted = local("approve", execution, "-i", "ticket=T-1")
    assert voted.code == 0, str(voted)
    assert f"your approval of p-t1 is counted; execution {execution}" in voted.stdout
    # Nobody else runs it: the approving process carries it to its end.
    shown = local.show(execution)
    assert shown["state"] == "COMPLETED", shown
    runs = {run["task_id"]: run for run in shown["task_runs"]}
    assert runs["sign_off"]["outputs"]["by"] == "cli"
    assert runs["sign_off"]["outputs"]["inputs"] == {"ticket": "T-1"}
    assert runs["shipped"]["outputs"] == {"value": "shipped 2.0"}
    assert local("inbox").stdout.strip() == "no open approval requests"


def test_deny_without_the_required_comment_is_one_error_line(local: Cli) -> None:
    execution = started(local)
    refused = local("deny", execution)
    error = assert_one_error_line(refused)
    assert "needs a comment to deny" in error
    assert local.state(execution)["state"] == "PAUSED"

    denied = local("deny", execution, "--comment", "not this week")
    assert denied.code == 0, str(denied)
    assert local.wait_state(execution, {"CANCELLED"})["state"] == "CANCELLED"


def test_the_local_user_votes_only_where_the_approvers_let_it(local: Cli, tmp_path: Path) -> None:
    (tmp_path / "release.yaml").write_text(OPS_RELEASE)
    assert local("flows", "apply", "release.yaml").code == 0
    execution = started(local)
    assert "not one of the approvers" in assert_one_error_line(local("approve", execution))
    mine = local("inbox", "--mine")
    assert mine.stdout.strip() == "no open approval requests you may vote on", str(mine)
    line = inbox_line(local("inbox"), execution)
    assert line.endswith("you may not vote: you are not one of its approvers")
    usage = local("inbox", "--label", "team=ops")
    assert "key:value" in assert_one_error_line(usage, code=2)


# -- against a server, with a key that acts for a person ----------------------------


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_path) as running:
        yield running


@pytest.fixture
async def admin(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.base_url, api_key=server.keys["acme:admin"]) as client:
        await client.apply_flow(OPS_RELEASE)
        yield client


async def keys_create(db_path: Path, cwd: Path, *args: str) -> str:
    """``pausepoint keys create ARGS`` on the server's database; the key it shows once."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "--db",
        f"sqlite:///{db_path}",
        "keys",
        "create",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=base_env(),
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    match = re.search(r"^(pp_\S+)$", out.decode(), re.MULTILINE)
    assert match, out.decode()
    return match.group(1)


@pytest.fixture
async def alice_key(db_path: Path, tmp_path: Path, server: RunningServer) -> str:
    args = ("--org", "acme", "--role", "operator", "--user", "alice", "--group", "ops")
    return await keys_create(db_path, tmp_path, *args)


async def waiting_for_approval(admin: AsyncClient) -> str:
    execution = await admin.start(NS, "release", inputs={"version": "3.0"})
    view = await admin.wait(execution.id, until="PAUSED", timeout=10)
    assert [p.kind for p in view.pause_points] == ["decision"]
    return execution.id


async def test_inbox_mine_against_a_server_with_a_key_for_a_user(
    server: RunningServer, admin: AsyncClient, alice_key: str, tmp_path: Path
) -> None:
    execution = await waiting_for_approval(admin)
    cli = RemoteCli(server, tmp_path)
    as_alice = {"PAUSEPOINT_API_KEY": alice_key}

    mine = await cli("inbox", "--mine", env=as_alice)
    assert mine.code == 0 and mine.stderr == "", str(mine)
    line = inbox_line(mine, execution)
    assert f'{NS}.release  task sign_off  "Ship 3.0?"  waiting ' in line
    assert line.endswith("approvals 0/1  you may approve or deny")
    listed = json.loads((await cli("inbox", "--mine", "--json", env=as_alice)).stdout)
    assert [item["execution_id"] for item in listed["items"]] == [execution]
    assert listed["items"][0]["me"]["may_approve"] is True

    # The admin key acts for no user in no group: nothing there is theirs to decide.
    assert (await cli.ok("inbox", "--mine")).stdout.strip() == (
        "no open approval requests you may vote on"
    )
    line = inbox_line(await cli.ok("inbox", "--namespace", NS), execution)
    assert line.endswith("you may not vote: you are not one of its approvers")
    assert "not one of the approvers" in one_line_error(await cli("approve", execution))

    voted = await cli("approve", execution, "--comment", "ship it", env=as_alice)
    assert voted.code == 0, str(voted)
    assert "your approval of p-t1 is counted" in voted.stdout
    ended = await admin.wait(execution, timeout=10)
    assert ended.state == "COMPLETED"
    assert (ended.task_run("sign_off").outputs or {})["by"] == "alice"
    after = await cli("inbox", "--mine", env=as_alice)
    assert after.stdout.strip() == "no open approval requests you may vote on"


async def test_deny_against_a_server_without_the_required_comment_fails_with_the_message(
    server: RunningServer, admin: AsyncClient, alice_key: str, tmp_path: Path
) -> None:
    execution = await waiting_for_approval(admin)
    cli = RemoteCli(server, tmp_path)
    as_alice = {"PAUSEPOINT_API_KEY": alice_key}
    refused = await cli("deny", execution, env=as_alice)
    assert refused.code == 1, str(refused)
    assert "approval 'sign_off' needs a comment to deny" in one_line_error(refused)
    assert (await admin.state(execution)).state == "PAUSED"

    denied = await cli("deny", execution, "--comment", "not now", env=as_alice)
    assert denied.code == 0, str(denied)
    assert "your denial of p-t1 is counted" in denied.stdout
    assert (await admin.wait(execution, timeout=10)).state == "CANCELLED"
