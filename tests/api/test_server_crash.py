"""kill -9 the server while executions run and commands are in flight, then restart it.

The server is a real subprocess (``python -m pausepoint server``). Every
control request that got a 2xx before the kill must, after a restart on the
same database, be in the audit as applied or rejected (never lost, never left
pending), and every execution must end where its applied commands say:
TERMINATED, CANCELLED, PAUSED, or COMPLETED.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint.testing import assert_eventually
from tests.api.conftest import free_port
from tests.api.matrix_support import HERE

pytestmark = pytest.mark.chaos  # kill -9 a server subprocess

CRASH_FLOW = """
id: crash
namespace: api.crash
tasks:
  - id: a
    type: python
    function: flows_crash:nap
    kwargs: {seconds: 0.4}
  - id: b
    type: python
    function: flows_crash:nap
    kwargs: {seconds: 0.4}
  - id: c
    type: python
    function: flows_crash:nap
    kwargs: {seconds: 0.4}
  - id: d
    type: python
    function: flows_crash:nap
    kwargs: {seconds: 0.4}
"""

KEY = re.compile(r"\bpp_[A-Za-z0-9]+_[A-Za-z0-9_-]+")
DEADLINE = 15.0


class ServerProcess:
    def __init__(self, process: asyncio.subprocess.Process, base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.output: list[str] = []

    async def read_until(self, pattern: re.Pattern[str]) -> re.Match[str]:
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            remaining = deadline - loop.time()
            assert remaining > 0, f"server said no {pattern.pattern}: {self.output}"
            line = (await asyncio.wait_for(self.process.stdout.readline(), remaining)).decode()
            assert line, f"server exited: {self.output}"
            self.output.append(line)
            found = pattern.search(line)
            if found:
                return found

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


@contextlib.asynccontextmanager
async def server_process(db: Path, flows: Path, port: int) -> AsyncIterator[ServerProcess]:
    env = {
        **os.environ,
        "PAUSEPOINT_POLL_INTERVAL": "0.05",
        "PAUSEPOINT_LEASE_TTL": "1",
        "PAUSEPOINT_LEASE_RENEW_INTERVAL": "0.3",
        # Reply at once: commands are accepted (durable) but often not yet applied.
        "PAUSEPOINT_COMMAND_WAIT_TIMEOUT": "0.01",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "400",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pausepoint",
        "--db",
        f"sqlite:///{db}",
        "server",
        "--port",
        str(port),
        "--flows",
        str(flows),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    server = ServerProcess(process, f"http://127.0.0.1:{port}")
    try:
        yield server
    finally:
        await server.kill()


async def wait_healthy(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:

        async def healthy() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await http.get("/healthz")).status_code == 200
            return False

        await assert_eventually(
            healthy, timeout=DEADLINE, interval=0.05, what="the server to become healthy"
        )


# What each execution is sent, in order, while the server runs.
PLANS: list[list[tuple[str, dict[str, Any]]]] = [
    [("pause", {"reason": "crash"})],
    [("cancel", {"reason": "crash"})],
    [("inject", {"message": "crash"})],
    [("pause", {}), ("resume", {})],
    [("terminate", {"reason": "crash"})],
    [("inject", {"message": "x"}), ("pause", {}), ("cancel", {})],
    [],
]


def expected_end(commands: list[dict[str, Any]]) -> str:
    applied = [c["kind"] for c in commands if c["status"] == "applied"]
    for kind in applied:
        if kind == "terminate":
            return "TERMINATED"
        if kind == "cancel":
            return "CANCELLED" if "terminate" not in applied else "TERMINATED"
    return "PAUSED" if applied.count("pause") > applied.count("resume") else "COMPLETED"


async def test_accepted_commands_survive_a_kill_9_of_the_server(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(HERE / "flows_crash.py", flows / "flows_crash.py")
    (flows / "crash.yaml").write_text(CRASH_FLOW)
    db = tmp_path / "crash.db"
    port = free_port()
    accepted: dict[str, str] = {}  # command id -> execution id
    limits = httpx.Limits(max_connections=100)

    async with server_process(db, flows, port) as first:
        key = (await first.read_until(KEY)).group(0)
        await wait_healthy(first.base_url)
        headers = {"X-API-Key": key}
        async with httpx.AsyncClient(
            base_url=first.base_url, headers=headers, timeout=10, limits=limits
        ) as http:
            execution_ids = []
            for _ in PLANS:
                reply = await http.post(
                    "/api/v1/executions", json={"namespace": "api.crash", "flow_id": "crash"}
                )
                assert reply.status_code == 201, reply.text
                execution_ids.append(reply.json()["id"])

            async def send(execution_id: str, plan: list[tuple[str, dict[str, Any]]]) -> None:
                for op, body in plan:
                    try:
                        reply = await http.post(
                            f"/api/v1/executions/{execution_id}/{op}", json=body
                        )
                    except httpx.TransportError:
                        return  # the server died: no reply, no promise
                    assert reply.status_code < 500, reply.text
                    if reply.status_code in (200, 202):
                        accepted[reply.json()["command_id"]] = execution_id
                        if len(accepted) >= 4:
                            enough.set()

            enough = asyncio.Event()
            senders = [
                asyncio.create_task(send(e, plan))
                for e, plan in zip(execution_ids, PLANS, strict=True)
            ]
            # Kill once some commands are accepted, while the rest are on the wire.
            await asyncio.wait_for(enough.wait(), DEADLINE)
            await first.kill()
            await asyncio.gather(*senders)
    assert len(accepted) >= 4

    async with server_process(db, flows, port) as second:
        await wait_healthy(second.base_url)
        async with httpx.AsyncClient(base_url=second.base_url, headers=headers) as http:

            async def recovered() -> tuple[dict[str, Any], dict[str, Any]]:
                audits = {
                    e: (await http.get(f"/api/v1/executions/{e}/audit")).json()
                    for e in execution_ids
                }
                states = {
                    e: (await http.get(f"/api/v1/executions/{e}/state")).json()["state"]
                    for e in execution_ids
                }
                recorded = {c["id"]: c for commands in audits.values() for c in commands}
                lost = set(accepted) - set(recorded)
                pending = [c for c in recorded.values() if c["status"] == "pending"]
                wrong = {
                    e: (states[e], expected_end(audits[e]))
                    for e in execution_ids
                    if states[e] != expected_end(audits[e])
                }
                assert not lost and not pending and not wrong, (
                    f"after restart: lost {lost}, pending {pending}, wrong end states {wrong}"
                )
                return audits, recorded

            audits, recorded = await assert_eventually(recovered, timeout=DEADLINE, interval=0.1)
            for command_id, execution_id in accepted.items():
                assert recorded[command_id]["status"] in ("applied", "rejected")
                assert any(c["id"] == command_id for c in audits[execution_id])


async def test_sigterm_lets_tasks_reach_a_checkpoint_and_releases_the_leases(
    tmp_path: Path,
) -> None:
    """SIGTERM stops the server gracefully: it drains, releases its leases and exits 0, so
    another server takes its executions over at once rather than after a lease expires."""
    flows = tmp_path / "flows"
    flows.mkdir()
    # Beside the flow, in the server's python_paths: the operator allows it there.
    shutil.copy(HERE / "flows_crash.py", flows / "flows_crash.py")
    (flows / "crash.yaml").write_text(CRASH_FLOW)
    db = tmp_path / "graceful.db"
    async with server_process(db, flows, free_port()) as server:
        key = (await server.read_until(KEY)).group(0)
        await wait_healthy(server.base_url)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"X-API-Key": key}, timeout=10
        ) as http:
            started = await http.post(
                "/api/v1/executions", json={"namespace": "api.crash", "flow_id": "crash"}
            )
            assert started.status_code == 201, started.text
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(server.process.wait(), DEADLINE)
        assert server.process.stdout is not None
        server.output.append((await server.process.stdout.read()).decode())
        output = "".join(server.output)
        assert code == 0, f"exit code {code}\n{output}"
        assert "stopping: letting in-flight tasks reach a checkpoint" in output, output
    with sqlite3.connect(db) as conn:
        held = conn.execute("SELECT count(*) FROM executions WHERE lease_owner IS NOT NULL")
        assert held.fetchone() == (0,), "a lease outlived the server that stopped gracefully"
