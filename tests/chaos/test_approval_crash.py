"""The vote that decides an approval, acknowledged just before a SIGKILL, decides it once.

Real servers (``python -m pausepoint server``) run on one SQLite file. The
second of a quorum of two approvals gets its 202, and the servers are SIGKILLed
the moment that reply arrives. Rounds alternate between two moments of the kill:

- unapplied: the execution runs on one server (a task beside the open request
  keeps it running, so that server holds its lease and does not look for
  commands during the round); another server accepts both votes and replies at
  once. The deciding vote is durable and acknowledged, and applied nowhere.
- applied: one server, which replies once the vote is applied: the kill lands
  in the ``onApprove`` branch or after it.

The next round's servers take the execution over. The request must be decided
exactly once: one ``approval.decided`` event, each vote once in ``votes`` and in
the audit as applied, the ``onApprove`` branch run once, and the execution
completes.

Quick mode (the normal suite) plays 3 rounds, ``PAUSEPOINT_CHAOS_FULL=1``
(``make soak``) 12. Each server's output is in ``server-<round>-<n>.log`` in the
test's tmp_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint.config import Settings
from pausepoint.service.engine import Engine
from pausepoint.store.sqlite_notify import notify_directory
from pausepoint.testing import assert_eventually
from tests.api.conftest import free_port
from tests.api.test_server_crash import ServerProcess, wait_healthy

FULL = os.environ.get("PAUSEPOINT_CHAOS_FULL") == "1"
ROUNDS = 12 if FULL else 3
DEADLINE = 30.0

FLOW = """
id: crash-review
namespace: chaos.approvals
inputs:
  - id: hold
    type: STRING
tasks:
  - id: both
    type: parallel
    tasks:
      - id: review
        type: approval
        quorum: 2
        onApprove:
          - id: approved
            type: return
            format: approved
        onDeny:
          - id: denied
            type: return
            format: denied
      - id: hold
        type: python
        function: approval_hold:hold
        kwargs:
          path: "{{ inputs.hold }}"
  - id: done
    type: return
    format: done
"""
# The task that keeps the execution running (so its server holds the lease) beside the
# open request, until the test creates its file. The server imports it from --flows DIR.
HOLD_MODULE = """
import asyncio
import pathlib


async def hold(path: str) -> dict[str, bool]:
    while not pathlib.Path(path).exists():
        await asyncio.sleep(0.02)
    return {"released": True}
"""


@dataclass(frozen=True)
class Setup:
    """How one server of a round replies to control requests and looks for work."""

    command_wait: float  # the longest a reply waits for its command to be applied
    poll_interval: float = 0.05  # how often it looks for commands other servers accepted


# The vote is killed unapplied: the server that runs the execution (started first; the
# hold task keeps it running, so it holds the lease) does not look for commands accepted
# elsewhere during the round, so the vote the other server acknowledges (it cannot take
# the execution over) waits in the store.
UNAPPLIED = (Setup(command_wait=1.0, poll_interval=60.0), Setup(command_wait=1e-6))
# The vote is killed applied: the reply waited for that; the kill lands in the onApprove
# branch or after the execution ended.
APPLIED = (Setup(command_wait=1.0),)


@contextlib.asynccontextmanager
async def server_process(
    db: Path, flows: Path, setup: Setup, log: Path
) -> AsyncIterator[ServerProcess]:
    """``pausepoint server`` on ``db`` with ``setup``, its output in ``log``; SIGKILLed
    on leaving."""
    env = {
        **os.environ,
        "PAUSEPOINT_POLL_INTERVAL": str(setup.poll_interval),
        "PAUSEPOINT_LEASE_TTL": "1",
        "PAUSEPOINT_LEASE_RENEW_INTERVAL": "0.3",
        "PAUSEPOINT_COMMAND_WAIT_TIMEOUT": str(setup.command_wait),
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "pausepoint", "--db", f"sqlite:///{db}"),
            *("server", "--port", str(port), "--flows", str(flows)),
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}")
    try:
        yield server
    finally:
        await server.kill()


@dataclass(frozen=True)
class Killed:
    """An execution whose deciding vote was acknowledged right before the kill."""

    execution_id: str
    pause_id: str
    reply: dict[str, Any]  # the deciding vote's 202


async def vote(
    http: httpx.AsyncClient, base_url: str, key: str, execution_id: str
) -> dict[str, Any]:
    reply = await http.post(
        f"{base_url}/api/v1/executions/{execution_id}/review",
        json={"decision": "approve"},
        headers={"X-API-Key": key},
    )
    assert reply.status_code == 202, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def start_and_open(
    http: httpx.AsyncClient, base_url: str, key: str, hold: Path
) -> tuple[str, str]:
    """A new execution (run by the server at ``base_url``, held until ``hold`` exists)
    with its approval request open: its id and the request's."""
    started = await http.post(
        f"{base_url}/api/v1/executions",
        json={
            "namespace": "chaos.approvals",
            "flow_id": "crash-review",
            "inputs": {"hold": str(hold)},
        },
        headers={"X-API-Key": key},
    )
    assert started.status_code == 201, started.text
    execution_id: str = started.json()["id"]

    async def request_open() -> str | None:
        view = (await http.get(f"{base_url}/api/v1/executions/{execution_id}")).json()
        return next((p["id"] for p in view["pause_points"] if p["task_id"] == "review"), None)

    pause_id: str = await assert_eventually(
        request_open, timeout=DEADLINE, what="the approval request open"
    )
    return execution_id, pause_id


async def assert_decided_once(http: httpx.AsyncClient, base_url: str, killed: Killed) -> None:
    execution_id = killed.execution_id
    what = f"execution {execution_id} (deciding vote acknowledged as {killed.reply})"

    async def completed() -> dict[str, Any]:
        view: dict[str, Any] = (
            await http.get(f"{base_url}/api/v1/executions/{execution_id}")
        ).json()
        assert view["state"] == "COMPLETED", (view["state"], view["error"])
        return view

    view = await assert_eventually(completed, timeout=DEADLINE, what=f"{what} COMPLETED")
    runs = {
        task_id: [r for r in view["task_runs"] if r["task_id"] == task_id]
        for task_id in ("review", "approved", "denied", "hold", "done")
    }
    counts = [len(runs[t]) for t in ("review", "approved", "denied", "hold", "done")]
    assert counts == [1, 1, 0, 1, 1], (
        what,
        view["task_runs"],
    )
    outputs = runs["review"][0]["outputs"]
    assert outputs["decision"] == "APPROVED" and outputs["by"] == "bob", (what, outputs)
    assert [(v["by"], v["decision"]) for v in outputs["votes"]] == [
        ("alice", "approve"),
        ("bob", "approve"),
    ], (what, outputs["votes"])

    events = (
        await http.get(
            f"{base_url}/api/v1/executions/{execution_id}/events", params={"limit": 1000}
        )
    ).json()
    assert events["next_after"] is None
    types = [e["type"] for e in events["items"]]
    assert types.count("approval.decided") == 1, (what, types)
    assert types.count("approval.voted") == 2, (what, types)

    audit = (await http.get(f"{base_url}/api/v1/executions/{execution_id}/audit")).json()
    votes = [c for c in audit if c["payload"].get("pause_id") == killed.pause_id]
    assert [(c["actor"], c["status"]) for c in votes] == [
        ("alice", "applied"),
        ("bob", "applied"),
    ], (what, votes)
    assert votes[1]["id"] == killed.reply["command_id"]


@pytest.mark.timeout(60 + 25 * ROUNDS)
async def test_a_deciding_vote_acknowledged_before_a_sigkill_decides_once(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "crash-review.yaml").write_text(FLOW)
    (flows / "approval_hold.py").write_text(HOLD_MODULE)
    db = tmp_path / "approvals.db"
    # The keys go in the database before any server runs, as `pausepoint keys create` does.
    async with Engine(Settings(db=f"sqlite:///{db}"), run_executions=False) as keys:
        starter, _ = await keys.create_api_key("operator", "starter", user="sam")
        alice, _ = await keys.create_api_key("operator", "alice", user="alice")
        bob, _ = await keys.create_api_key("operator", "bob", user="bob")
    killed: list[Killed] = []
    for number in range(ROUNDS + 1):
        setups = UNAPPLIED if number % 2 == 0 and number < ROUNDS else APPLIED
        async with contextlib.AsyncExitStack() as stack:
            servers = []
            for index, setup in enumerate(setups):
                log = tmp_path / f"server-{number}-{index}.log"
                server = await stack.enter_async_context(server_process(db, flows, setup, log))
                await wait_healthy(server.base_url)
                servers.append(server)
            runner, front = servers[0], servers[-1]
            if setups is UNAPPLIED:
                # Servers sharing the file wake each other at once: the runner's socket is
                # taken away, so that it finds the vote only by the poll it does not make.
                for listener in notify_directory(db).iterdir():
                    listener.unlink()
            http = await stack.enter_async_context(
                httpx.AsyncClient(headers={"X-API-Key": starter}, timeout=DEADLINE)
            )
            for earlier in killed:  # taken over from the servers killed before these
                await assert_decided_once(http, front.base_url, earlier)
            killed.clear()
            if number == ROUNDS:
                break
            hold = tmp_path / f"hold-{number}"
            execution_id, pause_id = await start_and_open(http, runner.base_url, starter, hold)
            await vote(http, front.base_url, alice, execution_id)
            deciding = await vote(http, front.base_url, bob, execution_id)
            await asyncio.gather(*(server.kill() for server in servers))
            hold.touch()  # the execution may end once taken over
            if setups is UNAPPLIED:
                assert deciding["applied"] is None, f"applied before the kill: {deciding}"
            killed.append(Killed(execution_id, pause_id, deciding))
