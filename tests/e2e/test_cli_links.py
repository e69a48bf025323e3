"""``pausepoint link`` and ``pausepoint callback`` end to end: real processes, a real server,
real SQLite files; each printed URL is then used with no key, as its receiver would.

With ``--url`` the server mints them (it has no ``public_url`` here: the CLI makes the
path it answers whole). Locally the CLI mints them on the server's database file
(whose key file it shares), starting them with ``PAUSEPOINT_PUBLIC_URL``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pausepoint import AsyncClient
from tests.api.conftest import RunningServer, running_server
from tests.e2e.cli_helpers import (
    COMMAND,
    HEAVY_MODULES,
    base_env,
    heavy_modules_in,
    heavy_modules_probe,
)
from tests.e2e.test_cli_remote import RemoteCli, Run, one_line_error

NS = "links.e2e"

DEPLOY = f"""\
id: deploy
namespace: {NS}
tasks:
  - id: review
    type: approval
    title: "Deploy {{{{ execution.id }}}}"
    commentRequired: ON_DENY
    approvers:
      users: [alice, bob]
  - id: done
    type: return
    format: "{{{{ outputs.review.decision }}}} by {{{{ outputs.review.by }}}}"
"""

# Two requests open at once: a link must say which one it is for.
TWIN = f"""\
id: twin
namespace: {NS}
tasks:
  - id: both
    type: parallel
    tasks:
      - id: legal
        type: approval
        title: Legal sign-off
        approvers:
          users: [alice]
      - id: finance
        type: approval
        title: Finance sign-off
        approvers:
          users: [alice]
"""

PAYMENT = f"""\
id: payment
namespace: {NS}
tasks:
  - id: settled
    type: pause
    onResume:
      - id: status
        type: SELECT
        values: [paid, refused]
      - id: amount
        type: INT
  - id: done
    type: return
    format: "{{{{ outputs.settled.onResume.status }}}} {{{{ outputs.settled.onResume.amount }}}}"
"""

URL_LINE = re.compile(r"^http://127\.0\.0\.1:\d+/\S+$")


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_path) as running:
        yield running


@pytest.fixture
async def admin(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.base_url, api_key=server.keys["acme:admin"]) as client:
        for flow in (DEPLOY, TWIN, PAYMENT):
            await client.apply_flow(flow)
        yield client


@pytest.fixture
def remote(server: RunningServer, tmp_path: Path) -> RemoteCli:
    return RemoteCli(server, tmp_path)


async def paused(admin: AsyncClient, flow_id: str) -> str:
    started = await admin.start(NS, flow_id)
    await admin.wait(started.id, until="PAUSED", timeout=30)
    return started.id


def printed_url(run: Run) -> str:
    """The one line a command printed: a whole URL; nothing on stderr."""
    assert run.code == 0 and run.stderr == "", str(run)
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and URL_LINE.match(lines[0]), str(run)
    return lines[0]


async def vote_through(url: str, decision: str) -> httpx.Response:
    """What the link's receiver does: open the page, press the button (no key)."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert page.status_code == 200, page.text
        return await browser.post(url, data={"decision": decision})


# -- against a server ---------------------------------------------------------------


async def test_link_prints_a_url_that_votes_as_the_approver(
    remote: RemoteCli, admin: AsyncClient, server: RunningServer
) -> None:
    execution = await paused(admin, "deploy")
    url = printed_url(await remote("link", execution, "--approver", "bob", "--decision", "approve"))
    assert url.startswith(f"{server.base_url}/decide/")
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert "You decide as <b id='approver'>bob</b>" in page.text
        assert f"Deploy {execution}" in page.text
    voted = await vote_through(url, "approve")
    assert voted.status_code == 200 and "bob approved" in voted.text, voted.text
    ended = await admin.wait(execution, timeout=30)
    assert ended.state == "COMPLETED", ended.error
    assert ended.task_run("done").outputs == {"value": "APPROVED by bob"}

    # The request is decided: a new link is refused, in one line.
    late = await remote("link", execution, "--approver", "alice")
    assert late.code == 1, str(late)
    assert "has no open approval request" in one_line_error(late)


async def test_link_names_the_requests_when_several_are_open(
    remote: RemoteCli, admin: AsyncClient
) -> None:
    execution = await paused(admin, "twin")
    view = await admin.execution(execution)
    ids = sorted(p.id for p in view.pause_points)
    assert len(ids) == 2, view.pause_points
    ambiguous = await remote("link", execution, "--approver", "alice")
    assert ambiguous.code == 2, str(ambiguous)
    error = one_line_error(ambiguous)
    assert "2 open approval requests; name one with --pause-id" in error
    assert '(task legal: "Legal sign-off")' in error
    assert '(task finance: "Finance sign-off")' in error
    assert all(pause_id in error for pause_id in ids)

    legal = next(p.id for p in view.pause_points if p.task_id == "legal")
    url = printed_url(
        await remote(
            "link", execution, "--approver", "alice", "--pause-id", legal, "--expires-in", "PT2H"
        )
    )
    voted = await vote_through(url, "approve")
    assert "alice approved" in voted.text, voted.text
    still = await admin.execution(execution)
    assert [p.task_id for p in still.pause_points] == ["finance"]


async def test_link_refusals_are_one_line(
    remote: RemoteCli, admin: AsyncClient, server: RunningServer
) -> None:
    execution = await paused(admin, "deploy")
    operator = {"PAUSEPOINT_API_KEY": server.keys["acme:operator"]}
    results = await asyncio.gather(
        remote("link", execution, "--approver", "alice", env=operator),
        remote("link", execution, "--approver", "alice", "--expires-in", "soon"),
        remote("link", execution, "--approver", "alice", "--pause-id", "p-nope"),
        remote("link", "0" * 24, "--approver", "alice"),
        remote("callback", execution, "nope"),
    )
    expected = (
        "needs the admin role",
        "expires_in: 'soon' is not an ISO-8601 duration",
        "no open approval request 'p-nope'",
        "not found",
        "no Pause task 'nope'",
    )
    for result, words in zip(results, expected, strict=True):
        assert result.code == 1, str(result)
        assert words in one_line_error(result)
    usage = await remote("link", execution)  # --approver is required
    assert usage.code == 2 and "--approver" in usage.stderr and "Traceback" not in usage.stderr
    assert (await admin.state(execution)).state == "PAUSED"


async def test_callback_prints_a_url_that_completes_the_wait(
    remote: RemoteCli, admin: AsyncClient
) -> None:
    execution = await paused(admin, "payment")
    url = printed_url(await remote("callback", execution, "settled", "--expires-in", "PT1H"))
    assert "/api/v1/callbacks/" in url
    async with httpx.AsyncClient() as system:  # no key: the token is the credential
        done = await system.post(url, json={"status": "paid", "amount": "7"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "applied"
    assert done.json()["inputs"] == {"status": "paid", "amount": 7}
    ended = await admin.wait(execution, timeout=30)
    assert ended.task_run("done").outputs == {"value": "paid 7"}


async def test_a_remote_link_loads_neither_the_server_nor_the_database(
    remote: RemoteCli, admin: AsyncClient, server: RunningServer
) -> None:
    execution = await paused(admin, "deploy")
    probe = heavy_modules_probe("--url", server.base_url, "link", execution, "--approver", "bob")
    process = await asyncio.create_subprocess_exec(
        *probe,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=remote.cwd,
        env=remote.env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert out.decode().startswith(f"{server.base_url}/decide/"), err.decode()
    assert heavy_modules_in(err.decode()) == [], f"{HEAVY_MODULES} are for local commands"


# -- locally, on the server's database file ------------------------------------------


async def local(db_path: Path, cwd: Path, *args: str, **env: str) -> Run:
    """``pausepoint --db <the server's database> ARGS`` in its own process."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "--db",
        f"sqlite:///{db_path}",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=base_env(**env),
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return Run(args, process.returncode, out.decode(), err.decode())


async def test_local_link_and_callback_start_with_the_public_url_and_work_on_the_server(
    server: RunningServer, db_path: Path, tmp_path: Path
) -> None:
    # The server's flows and executions belong to the organization "acme"; the CLI's
    # local user acts in "default", so these are started there, on the same file.
    engine = server.engine  # the default organization
    for flow in (DEPLOY, PAYMENT):
        await engine.put_flow(flow)
    deploy = (await engine.start_execution(NS, "deploy")).id
    payment = (await engine.start_execution(NS, "payment")).id
    for execution in (deploy, payment):
        await engine.wait(execution, until=lambda v: v.state == "PAUSED", timeout=30)

    public = {"PAUSEPOINT_PUBLIC_URL": server.base_url}
    link = printed_url(
        await local(db_path, tmp_path, "link", deploy, "--approver", "alice", **public)
    )
    assert link.startswith(f"{server.base_url}/decide/")
    voted = await vote_through(link, "deny")
    assert voted.status_code == 422 and "needs a comment" in voted.text, voted.text
    async with httpx.AsyncClient() as browser:
        denied = await browser.post(link, data={"decision": "deny", "comment": "not today"})
    assert "alice denied" in denied.text, denied.text
    ended = await engine.wait(deploy, timeout=30)
    assert (ended.task_run("review").outputs or {})["decision"] == "DENIED"

    callback = printed_url(await local(db_path, tmp_path, "callback", payment, "settled", **public))
    async with httpx.AsyncClient() as system:
        done = await system.post(callback, json={"status": "refused", "amount": 0})
    assert done.status_code == 200 and done.json()["status"] == "applied", done.text
    assert (await engine.wait(payment, timeout=30)).state == "COMPLETED"


async def test_local_link_without_a_public_url_is_a_path_with_a_note(
    server: RunningServer, db_path: Path, tmp_path: Path
) -> None:
    engine = server.engine
    await engine.put_flow(DEPLOY)
    execution = (await engine.start_execution(NS, "deploy")).id
    await engine.wait(execution, until=lambda v: v.state == "PAUSED", timeout=30)
    run = await local(db_path, tmp_path, "link", execution, "--approver", "bob", "--json")
    assert run.code == 0, str(run)
    assert '"approver": "bob"' in run.stdout and '"url": "/decide/' in run.stdout, str(run)
    assert run.stderr.startswith("note: this is a path on the server"), str(run)
    assert "PAUSEPOINT_PUBLIC_URL" in run.stderr
